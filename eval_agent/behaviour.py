"""How a model's episodes end and which actions they take, one row per episode folder.

    python -m eval_agent.behaviour outputs/<model>/webshop_test [more folders ...] [--names SFT DPO ...]

A reward average says that a model got worse, not how. This table says how: the share of episodes
ending in success, in another end (WebShop: a wrong purchase; or the step limit, an invalid
action, ...), the episodes scoring 0, and the actions per episode by kind (``pair_analysis.
action_kind``: search, item, option, buy, detail, navigate, ...). A DPO model that stops choosing
options, or loops on "Back to Search" until the step limit, shows here at a glance.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from typing import Dict, List, Optional, Sequence

from eval_agent.envs.base import parse_action
from eval_agent.pair_analysis import action_kind
from eval_agent.results import read_episodes


def profile(records: Sequence[dict]) -> Dict[str, object]:
    """Counts over one model's episodes: ends, zero-reward episodes, actions by kind."""
    ends, kinds = Counter(), Counter()
    for record in records:
        meta = record["meta"]
        ends[meta.get("terminate_reason") or "unfinished"] += 1
        for turn in record["conversations"][meta.get("task_turn") or 0:]:
            if turn["from"] == "gpt":
                kinds[action_kind(parse_action(turn["value"]))] += 1
    rewards = [float(r["meta"]["reward"]) for r in records]
    return {"episodes": len(records), "average_reward": sum(rewards) / len(rewards) if rewards else 0.0,
            "zero_reward": sum(r == 0 for r in rewards), "ends": ends, "actions": kinds}


def table(names: Sequence[str], profiles: Sequence[Dict[str, object]]) -> str:
    """Markdown: one row per model; ends as shares of episodes, actions per episode."""
    ends = sorted({end for p in profiles for end in p["ends"]})
    kinds = sorted({kind for p in profiles for kind in p["actions"]})
    head = ["model", "episodes", "reward", "reward 0"] + [f"ends: {e}" for e in ends] + [f"{k} / ep" for k in kinds]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, p in zip(names, profiles):
        n = p["episodes"] or 1
        cells = [name, str(p["episodes"]), f"{p['average_reward']:.3f}", f"{p['zero_reward'] / n:.0%}"]
        cells += [f"{p['ends'][e] / n:.0%}" for e in ends] + [f"{p['actions'][k] / n:.2f}" for k in kinds]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("folders", nargs="+", help="episode folders (eval_agent.main's output for one model and split)")
    p.add_argument("--names", nargs="+", default=None, help="a row name per folder (default: the model's folder name)")
    args = p.parse_args(argv)
    if args.names and len(args.names) != len(args.folders):
        print(f"error: {len(args.names)} names for {len(args.folders)} folders", file=sys.stderr)
        return 2
    profiles: List[Dict[str, object]] = []
    for folder in args.folders:
        records = read_episodes(folder)
        if not records:
            print(f"error: no finished episodes in {folder}", file=sys.stderr)
            return 1
        profiles.append(profile(records))
    names = args.names or [os.path.basename(os.path.dirname(os.path.abspath(f))) for f in args.folders]
    print(table(names, profiles))
    return 0


if __name__ == "__main__":
    sys.exit(main())
