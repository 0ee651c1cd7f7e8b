"""Build the training set of rejection-sampling fine-tuning (RFT, the paper's baseline): the
expert trajectories plus the explored episodes that succeeded.

    python construct_rft_data.py --task sciworld --golden_traj_path data/sciworld_sft.json \\
        --episodes_dir outputs/sciworld-sft/sciworld_train_rft --output_path data_pm/sciworld_rft_1.json

Every episode file in the ``--episodes_dir`` folders (and in their ``sample_k`` folders, as
``eval_agent.main --num_samples`` writes them) whose episode succeeded (its env's success flag)
becomes an SFT record: the expert record's opening turns (instruction, "OK", task; no in-context
example, as SFT trains without one) followed by the episode's own turns, ending on an agent turn.
Duplicates are dropped: an episode whose turns equal the expert's or another kept episode's for
the same task. Episodes of tasks without an expert trajectory, failed episodes, episodes that
ended in an agent error and unreadable files are counted and skipped. Output: the SFT format
(``[{id, conversations}]``), expert records first, each success as ``<expert id>-rft-<n>``.

``--no_expert`` (self-play, the paper's Table 5): no expert trajectories; the training set is the
successes alone, each opening with its own episode's instruction, "OK" and task, as
``<task id>-rft-<n>``. A run without any success writes an empty list: nothing to train on
(``run_eto.sh`` then keeps the policy unchanged).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple, Type

from eto.io import DataError
from eto.records import PROMPT_TURNS, end_on_agent_turn, episode_opening, load_sft_data, write_sft_data
from eval_agent.config import load_task_config
from eval_agent.registry import TASKS
from eval_agent.results import read_episodes, sample_folders
from eval_agent.tasks.base import Task


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", required=True, help="task config name (sciworld, alfworld, webshop, sciworld_demo, ...)")
    p.add_argument("--golden_traj_path", default=None, help="expert trajectories in the SFT format (data/<task>_sft.json)")
    p.add_argument("--expert_records", type=int, default=0,
                   help="train on the first N expert trajectories only (SFT's --max_samples; 0: all); the others "
                        "still open the successes of their tasks")
    p.add_argument("--no_expert", action="store_true", help="no expert trajectories: the successes alone (self-play)")
    p.add_argument("--episodes_dir", action="append", required=True,
                   help="folder of explored episodes (repeatable; sample_k subfolders are read too)")
    p.add_argument("--output_path", required=True, help="where to write the training set (JSON, SFT format)")
    return p


def successful_episodes(folders: Sequence[str], counts: Counter) -> List[dict]:
    """The successful, error-free episodes of ``folders``, in folder, sample and file order."""
    found = []
    for folder in folders:
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"episode folder {folder} does not exist")
        for sample in sample_folders(folder):
            for record in read_episodes(sample, counts):
                if record["meta"].get("success"):
                    found.append(record)
                else:
                    counts["failed episodes"] += 1
    return found


def trajectory_key(turns: List[dict]) -> Tuple[Tuple[str, str], ...]:
    return tuple((t["from"], t["value"].strip()) for t in turns)


def build_rft_data(task_cls: Type[Task], experts: Optional[List[dict]], episodes: List[dict],
                   counts: Counter, expert_records: int = 0) -> List[dict]:
    """The first ``expert_records`` expert records (0: all) plus new successes; ``experts=None``:
    the successes alone (self-play)."""
    by_id: Dict[str, dict] = {task_cls.expert_key(e): e for e in experts or []}
    seen = {task_id: {trajectory_key(e["conversations"][PROMPT_TURNS:])} for task_id, e in by_id.items()}
    added: Counter = Counter()
    records = list(experts or [])[:expert_records or None]
    counts["expert trajectories"] = len(records)
    for episode in episodes:
        task_id = str(episode["meta"]["id"])
        expert = by_id.get(task_id)
        if expert is None and experts is not None:
            counts["successes without an expert trajectory"] += 1
            continue
        turns = end_on_agent_turn(episode["conversations"][episode["meta"]["task_turn"] + 1:])
        key = trajectory_key(turns)
        if not turns or key in seen.setdefault(task_id, set()):
            counts["duplicate successes (same turns as the expert's or a kept one)"] += 1
            continue
        seen[task_id].add(key)
        added[task_id] += 1
        opening = episode_opening(episode) if expert is None else expert["conversations"][:PROMPT_TURNS]
        records.append({"id": f"{task_id if expert is None else expert['id']}-rft-{added[task_id]}",
                        "conversations": opening + turns})
    counts["successes added"] = sum(added.values())
    counts["tasks with an added success"] = len(added)
    return records


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    counts: Counter = Counter()
    try:
        _, env_name = load_task_config(args.task)
        task_cls = TASKS[env_name]
        if args.no_expert == bool(args.golden_traj_path):
            raise ValueError("give --golden_traj_path (expert trajectories) or --no_expert, not both")
        if args.expert_records < 0 or (args.expert_records and args.no_expert):
            raise ValueError("--expert_records takes a count of expert trajectories (0: all), and not with --no_expert")
        experts = None if args.no_expert else load_sft_data(args.golden_traj_path)
        episodes = successful_episodes(args.episodes_dir, counts)
    except (DataError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    records = build_rft_data(task_cls, experts, episodes, counts, args.expert_records)
    write_sft_data(args.output_path, records)
    if not records:
        print("no successful episode in " + ", ".join(args.episodes_dir) + ": nothing to train on")
    print(f"{counts['expert trajectories']} expert trajectories + {counts['successes added']} successful episodes "
          f"({counts['tasks with an added success']} tasks) -> {args.output_path}")
    for reason, n in sorted(counts.items()):
        if reason not in ("expert trajectories", "successes added", "tasks with an added success") and n:
            print(f"  skipped/noted: {n} {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
