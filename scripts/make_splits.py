"""Regenerate an environment's split files.

    python scripts/make_splits.py sciworld      # the original ETO's lists -> data/sciworld/*.json (committed)
    python scripts/make_splits.py sciworld --rules   # rule-based ScienceWorld splits instead
    python scripts/make_splits.py alfworld      # solvable games; test checked against the original's list
    python scripts/make_splits.py webshop       # from the catalog in data/webshop (setup.sh runs it)
    python scripts/make_splits.py webshop --data_dir my/catalog   # splits beside another catalog

The original's task lists are read from ``--lists_dir`` (default: ``$ETO_SHARED_DIR/data/eto``,
else ``../shared/data/eto``); WebShop's are committed in ``data/webshop_original_splits.json``.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from eval_agent.tasks import TASKS  # noqa: E402
from eval_agent.tasks import alfworld, sciworld, webshop  # noqa: E402
from eval_agent.tasks.base import REPO_ROOT, write_split  # noqa: E402


def default_lists_dir() -> str:
    shared = os.environ.get("ETO_SHARED_DIR") or os.path.join(REPO_ROOT, "..", "shared")
    return os.path.normpath(os.path.join(shared, "data", "eto"))


def generate(args: argparse.Namespace):
    if args.env == "sciworld":
        return sciworld.generate_rule_splits() if args.rules else sciworld.generate_splits(args.lists_dir)
    if args.env == "alfworld":
        lists_dir = args.lists_dir if os.path.isdir(args.lists_dir) else None
        if lists_dir is None:
            print(f"note: {args.lists_dir} not found; test = every solvable valid_unseen game, unchecked", file=sys.stderr)
        return alfworld.generate_splits(lists_dir=lists_dir)
    return webshop.generate_splits(args.data_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("env", choices=sorted(TASKS))
    parser.add_argument("--data_dir", default=None, help="webshop: the catalog folder (default data/webshop)")
    parser.add_argument("--lists_dir", default=default_lists_dir(), help="the original ETO's task lists")
    parser.add_argument("--rules", action="store_true", help="sciworld: rule-based splits instead of the original's lists")
    args = parser.parse_args()
    if args.data_dir and args.env != "webshop":
        parser.error("--data_dir is for webshop, whose split files live beside its catalog")
    if args.rules and args.env != "sciworld":
        parser.error("--rules is for sciworld")
    task_class = TASKS[args.env]
    try:
        splits = generate(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    for split, tasks in splits.items():
        path = task_class.split_path(split, {"data_dir": args.data_dir})
        write_split(path, tasks)
        print(f"{split}: {len(tasks)} tasks over {len({t.category for t in tasks})} types -> {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
