"""Build trajectory preference pairs from explored episodes and expert trajectories (ETO step 3).

    python construct_preference.py --model sciworld-sft-explore --task sciworld \\
        --golden_traj_path data/sciworld_sft.json --output_path data_pm/sciworld_pm_round1.json

Each explored episode (``outputs/<model>/<task>/<task_id>.json`` by default, or the folders given
with ``--episodes_dir``) is compared with the expert trajectory of the same task id, by the
original ETO's rules:

- the expert's reward is 1.0, or the reward its SFT record carries (WebShop); the agent's is the
  episode's reward, made 1.0/0.0 for environments whose task class says so (ALFWorld);
- agent below expert: chosen = expert, rejected = agent. The rejected side keeps at most the
  expert's number of agent turns plus the task class's margin (5 for WebShop and ScienceWorld);
- agent above expert: chosen = agent, rejected = expert. Ties give no pair;
- both sides end on an agent turn; the prompt is the expert record's instruction, its "OK" and
  the task, without in-context examples (exploration may have used some).

Output (the original README's DPO format): ``[{id, prompt, chosen, rejected, chosen_reward,
rejected_reward}]`` with ``prompt``/``chosen``/``rejected`` lists of ``{from, value}`` turns.
Unreadable episode files, episodes that ended in an agent error and tasks without an expert
trajectory are counted and skipped.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple, Type

from eval_agent.config import config_name, load_task_config
from eval_agent.registry import TASKS
from eval_agent.results import read_episodes
from eval_agent.tasks.base import Task
from eto.io import DataError
from eto.records import PROMPT_TURNS, end_on_agent_turn, load_sft_data, validate_pair, write_preference_data


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", required=True, help="task config name (sciworld, alfworld, webshop, sciworld_demo, ...)")
    p.add_argument("--golden_traj_path", required=True, help="expert trajectories in the SFT format (data/<task>_sft.json)")
    p.add_argument("--output_path", required=True, help="where to write the pairs (JSON)")
    p.add_argument("--model", default=None, help="the explored model's name: reads outputs/<model>/<task>/")
    p.add_argument("--episodes_dir", action="append", default=None,
                   help="folder of explored episode files (repeatable); replaces the --model default")
    return p


def load_episodes(folders: Sequence[str], counts: Counter) -> Dict[str, dict]:
    """task id -> usable episode record, from every ``*.json`` episode file in ``folders``."""
    episodes: Dict[str, dict] = {}
    for folder in folders:
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"episode folder {folder} does not exist")
        for record in read_episodes(folder, counts):
            episodes[str(record["meta"]["id"])] = record
    return episodes


def agent_turns(turns: List[dict]) -> int:
    return sum(turn["from"] == "gpt" for turn in turns)


def cut_to_agent_turns(turns: List[dict], limit: int) -> List[dict]:
    """The first ``limit`` agent turns and the observations between them."""
    kept, seen = [], 0
    for turn in turns:
        if turn["from"] == "gpt":
            if seen == limit:
                break
            seen += 1
        kept.append(turn)
    return end_on_agent_turn(kept)


def make_pair(task_cls: Type[Task], expert: dict, episode: dict) -> Tuple[str, Optional[dict]]:
    """('lose'|'win'|'tie', pair or None) for one task, by the rules in the module docstring."""
    field = task_cls.expert_reward_field
    expert_reward = 1.0 if field is None else float(expert[field])
    agent_reward = float(episode["meta"]["reward"])
    if task_cls.binary_reward:
        agent_reward = 1.0 if episode["meta"].get("success") or agent_reward >= 1.0 else 0.0
    prompt = expert["conversations"][:PROMPT_TURNS]
    expert_side = end_on_agent_turn(expert["conversations"][PROMPT_TURNS:])
    agent_side = end_on_agent_turn(episode["conversations"][episode["meta"]["task_turn"] + 1:])
    if agent_reward == expert_reward:
        return "tie", None
    if agent_reward < expert_reward:
        outcome, chosen, rejected = "lose", expert_side, agent_side
        if task_cls.rejected_extra_turns is not None:
            rejected = cut_to_agent_turns(rejected, agent_turns(expert_side) + task_cls.rejected_extra_turns)
        rewards = (expert_reward, agent_reward)
    else:
        outcome, chosen, rejected = "win", agent_side, expert_side
        rewards = (agent_reward, expert_reward)
    if not chosen or not rejected:
        return outcome, None
    return outcome, {"id": task_cls.expert_key(expert), "prompt": prompt, "chosen": chosen, "rejected": rejected,
                     "chosen_reward": rewards[0], "rejected_reward": rewards[1]}


def build_pairs(task_cls: Type[Task], experts: List[dict], episodes: Dict[str, dict], counts: Counter) -> List[dict]:
    pairs = []
    for expert in experts:  # expert order: reruns give the same file
        episode = episodes.get(task_cls.expert_key(expert))
        if episode is None:
            counts["expert trajectories without a usable explored episode"] += 1
            continue
        if episode["conversations"][episode["meta"]["task_turn"]]["value"].strip() != \
                expert["conversations"][PROMPT_TURNS - 1]["value"].strip():
            counts["episodes whose task text differs from the expert's (paired anyway)"] += 1
        outcome, pair = make_pair(task_cls, expert, episode)
        counts[outcome] += 1
        if pair is None:
            if outcome != "tie":
                counts["pairs without an agent turn on one side"] += 1
            continue
        validate_pair(pair, len(pairs))  # both sides come from validated turns: a failure is a bug here
        pairs.append(pair)
    counts["explored episodes without an expert trajectory"] = len(set(episodes) - {task_cls.expert_key(e) for e in experts})
    return pairs


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _, env_name = load_task_config(args.task)
        task_cls = TASKS[env_name]
        if not args.episodes_dir and not args.model:
            raise ValueError("give --model (reads outputs/<model>/<task>/) or --episodes_dir")
        folders = args.episodes_dir or [os.path.join("outputs", args.model, config_name(args.task))]
        experts = load_sft_data(args.golden_traj_path)
        if task_cls.expert_reward_field:
            missing = [e["id"] for e in experts if not isinstance(e.get(task_cls.expert_reward_field), (int, float))]
            if missing:
                raise ValueError(f"{args.golden_traj_path}: record {missing[0]!r} has no numeric "
                                 f"{task_cls.expert_reward_field!r} field ({len(missing)} records lack it)")
        counts: Counter = Counter()
        episodes = load_episodes(folders, counts)
    except (DataError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    pairs = build_pairs(task_cls, experts, episodes, counts)
    write_preference_data(args.output_path, pairs)
    print(f"win: {counts['win']}, tie: {counts['tie']}, lose: {counts['lose']}")
    print(f"{len(pairs)} pairs -> {args.output_path}")
    for reason, n in sorted(counts.items()):
        if reason not in ("win", "tie", "lose") and n:
            print(f"  skipped/noted: {n} {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
