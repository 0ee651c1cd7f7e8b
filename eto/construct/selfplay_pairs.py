"""Build preference pairs from a policy's own episodes, without expert trajectories (self-play,
the paper's Table 5).

    python construct_selfplay_pairs.py --task webshop --output_path data_pm/webshop_selfplay_pm.json \\
        --episodes_dir outputs/Llama-2-7b-chat-hf/webshop_train_selfplay

Each task is played several times (``eval_agent.main --num_samples K`` writes ``sample_1`` ...
``sample_K``). Of a task's usable episodes, the one with the highest reward is chosen and the one
with the lowest is rejected, when the two rewards differ by more than ``--margin`` (the first in
sample order wins a tie for best or worst). Rewards are compared as ``construct_preference.py``
compares them (ALFWorld's as success/failure), and the rejected side is cut the same way: to the
chosen side's agent turns plus the task class's margin. The prompt is the chosen episode's
instruction, "OK" and task, without in-context examples. Tasks with a single usable episode, or
whose episodes all earn the same reward, give no pair. Output: the format of
``construct_preference.py`` (an empty list where no task gives a pair).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from typing import Dict, List, Optional, Sequence, Type

from eto.construct.preference import agent_reward, agent_turns, cut_to_agent_turns
from eto.io import DataError
from eto.records import end_on_agent_turn, episode_opening, validate_pair, write_preference_data
from eval_agent.config import load_task_config
from eval_agent.registry import TASKS
from eval_agent.results import read_episodes, sample_folders
from eval_agent.tasks.base import Task


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", required=True, help="task config name (sciworld, alfworld, webshop, webshop_demo, ...)")
    p.add_argument("--episodes_dir", action="append", required=True,
                   help="folder of explored episodes with sample_k subfolders (repeatable)")
    p.add_argument("--output_path", required=True, help="where to write the pairs (JSON)")
    p.add_argument("--margin", type=float, default=0.0,
                   help="pair a task only when its best and worst rewards differ by more than this")
    return p


def episodes_by_task(folders: Sequence[str], counts: Counter) -> Dict[str, List[dict]]:
    """task id -> its usable episodes, in folder and sample order."""
    by_task: Dict[str, List[dict]] = {}
    for folder in folders:
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"episode folder {folder} does not exist")
        for sample in sample_folders(folder):
            for record in read_episodes(sample, counts):
                by_task.setdefault(str(record["meta"]["id"]), []).append(record)
    return by_task


def make_selfplay_pair(task_cls: Type[Task], task_id: str, episodes: List[dict], margin: float):
    """(outcome, pair or None) for one task's episodes."""
    if len(episodes) < 2:
        return "tasks with fewer than 2 usable episodes", None
    rewards = [agent_reward(task_cls, e) for e in episodes]
    best = max(range(len(episodes)), key=lambda i: (rewards[i], -i))
    worst = min(range(len(episodes)), key=lambda i: (rewards[i], i))
    if rewards[best] - rewards[worst] <= margin:
        return "tasks whose episodes' rewards differ by no more than the margin", None
    turns = [end_on_agent_turn(e["conversations"][e["meta"]["task_turn"] + 1:]) for e in (episodes[best], episodes[worst])]
    chosen, rejected = turns
    if task_cls.rejected_extra_turns is not None:
        rejected = cut_to_agent_turns(rejected, agent_turns(chosen) + task_cls.rejected_extra_turns)
    if not chosen or not rejected:
        return "pairs without an agent turn on one side", None
    return "paired", {"id": task_id, "prompt": episode_opening(episodes[best]), "chosen": chosen, "rejected": rejected,
                      "chosen_reward": rewards[best], "rejected_reward": rewards[worst]}


def build_selfplay_pairs(task_cls: Type[Task], by_task: Dict[str, List[dict]], margin: float,
                         counts: Counter) -> List[dict]:
    pairs = []
    for task_id in sorted(by_task):  # a rerun writes the same file
        outcome, pair = make_selfplay_pair(task_cls, task_id, by_task[task_id], margin)
        counts[outcome] += 1
        if pair is not None:
            validate_pair(pair, len(pairs))
            pairs.append(pair)
    return pairs


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    counts: Counter = Counter()
    try:
        if args.margin < 0:
            raise ValueError("--margin must be at least 0")
        _, env_name = load_task_config(args.task)
        task_cls = TASKS[env_name]
        by_task = episodes_by_task(args.episodes_dir, counts)
    except (DataError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    pairs = build_selfplay_pairs(task_cls, by_task, args.margin, counts)
    write_preference_data(args.output_path, pairs)
    print(f"{len(pairs)} pairs from {len(by_task)} tasks -> {args.output_path}")
    if not pairs:
        print(f"no task's episodes differ in reward by more than {args.margin}: no pair to train on")
    for reason, n in sorted(counts.items()):
        if reason != "paired" and n:
            print(f"  skipped/noted: {n} {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
