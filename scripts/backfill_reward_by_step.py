"""Give episodes saved before the runner recorded rewards per step their ``meta.reward_by_step``,
by replaying their replies in the environment (the reward-by-step curves, eval_agent/efficiency.py).

    python scripts/backfill_reward_by_step.py --task sciworld_demo outputs/<model>/sciworld_demo_test

The environments are deterministic for a given task and sequence of replies, so a replay reaches
the rewards the episode met. Each replay must end on the reward the file records; one that does
not is reported and its file left as it was. Files that already have the field are not touched;
every change is an atomic rewrite of one file.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from typing import Optional, Sequence

from eto.io import read_json_or_none, write_json_atomic
from eval_agent.config import load_task_config, run_cli
from eval_agent.registry import ENVS, TASKS


def replay_rewards(env, task, record: dict) -> list:
    """The task's reward after each of the episode's replies, replayed in ``env``."""
    env.reset(task)
    turns = record["conversations"][record["meta"]["task_turn"] + 1:]
    rewards = []
    for turn in turns:
        if turn["from"] == "gpt" and not env.state.finished:
            _, state = env.step(turn["value"])
            rewards.append(state.reward)
    return rewards


def backfill(folder: str, task_name: str) -> dict:
    config, env_name = load_task_config(task_name)
    task_cls, env = TASKS[env_name], ENVS[env_name](config)
    counts = {"filled": 0, "already had it": 0, "did not replay to the recorded reward": 0, "unusable": 0}
    try:
        for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
            record = read_json_or_none(path)
            meta = record.get("meta") if isinstance(record, dict) else None
            if os.path.basename(path).startswith("_") or not isinstance(meta, dict):
                continue
            if meta.get("reward_by_step"):
                counts["already had it"] += 1
                continue
            if meta.get("error") is not None or not isinstance(meta.get("task"), dict) or meta.get("task_turn") is None:
                counts["unusable"] += 1
                continue
            rewards = replay_rewards(env, task_cls(**meta["task"]), record)
            if not rewards or abs(rewards[-1] - float(meta["reward"])) > 1e-9:
                counts["did not replay to the recorded reward"] += 1
                print(f"warning: {path}: the replay ended on {rewards[-1] if rewards else None}, "
                      f"the file records {meta['reward']}; left as it was", file=sys.stderr)
                continue
            meta["reward_by_step"] = rewards
            write_json_atomic(path, record)
            counts["filled"] += 1
    finally:
        env.close()
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True, help="the task config the episodes were played with (sciworld_demo, ...)")
    parser.add_argument("folders", nargs="+", help="episode folders (sample_k subfolders are separate folders)")
    args = parser.parse_args(argv)

    def run(args) -> int:
        for folder in args.folders:
            if not os.path.isdir(folder):
                raise FileNotFoundError(f"episode folder {folder} does not exist")
            counts = backfill(folder, args.task)
            print(f"{folder}: " + ", ".join(f"{n} {what}" for what, n in counts.items() if n))
        return 0

    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
