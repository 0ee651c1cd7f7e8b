"""Regenerate the committed split files of an environment from its rules.

    python scripts/make_splits.py sciworld
    python scripts/make_splits.py alfworld
    python scripts/make_splits.py webshop       # from the catalog in data/webshop (setup.sh runs it)
    python scripts/make_splits.py webshop --data_dir my/catalog   # splits beside another catalog
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from eval_agent.tasks import TASKS  # noqa: E402
from eval_agent.tasks.base import write_split  # noqa: E402
from eval_agent.tasks.alfworld import generate_splits as alfworld_splits  # noqa: E402
from eval_agent.tasks.sciworld import generate_splits as sciworld_splits  # noqa: E402
from eval_agent.tasks.webshop import generate_splits as webshop_splits  # noqa: E402

GENERATORS = {"sciworld": sciworld_splits, "alfworld": alfworld_splits, "webshop": webshop_splits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("env", choices=sorted(GENERATORS))
    parser.add_argument("--data_dir", default=None, help="webshop: the catalog folder (default data/webshop)")
    args = parser.parse_args()
    if args.data_dir and args.env != "webshop":
        parser.error("--data_dir is for webshop, whose split files live beside its catalog")
    task_class = TASKS[args.env]
    try:
        splits = GENERATORS[args.env](args.data_dir) if args.data_dir else GENERATORS[args.env]()
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    for split, tasks in splits.items():
        path = task_class.split_path(split, {"data_dir": args.data_dir})
        write_split(path, tasks)
        print(f"{split}: {len(tasks)} tasks over {len({t.category for t in tasks})} types -> {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
