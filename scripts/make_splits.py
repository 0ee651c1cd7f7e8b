"""Regenerate an environment's split files (its plug-in's split generator).

    python scripts/make_splits.py sciworld      # the original ETO's lists -> data/sciworld/*.json (committed)
    python scripts/make_splits.py sciworld --rules   # rule-based ScienceWorld splits instead
    python scripts/make_splits.py alfworld      # solvable games; test checked against the original's list
    python scripts/make_splits.py webshop       # from the catalog in data/webshop (setup.sh runs it)
    python scripts/make_splits.py webshop --data_dir my/catalog   # splits beside another catalog

The original's task lists are read from ``--lists_dir`` (default: ``$ETO_SHARED_DIR/data/eto``,
else ``../shared/data/eto``); WebShop's are committed in ``data/webshop_original_splits.json``.
Each environment accepts the options its plug-in spec lists (``split_options``).
"""

import argparse
import os
import sys

from eval_agent.registry import ENVIRONMENTS
from eval_agent.tasks.base import REPO_ROOT, write_split

OPTION_HELP = {
    "data_dir": "the data folder the splits belong to (webshop: the catalog; default data/<env>)",
    "lists_dir": "the folder with the original ETO's task lists",
    "rules": "rule-based splits instead of the original's lists",
}


def default_lists_dir() -> str:
    shared = os.environ.get("ETO_SHARED_DIR") or os.path.join(REPO_ROOT, "..", "shared")
    return os.path.normpath(os.path.join(shared, "data", "eto"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("env", choices=sorted(ENVIRONMENTS))
    parser.add_argument("--data_dir", default=None, help=OPTION_HELP["data_dir"])
    parser.add_argument("--lists_dir", default=None, help=OPTION_HELP["lists_dir"] + " (default: shared/data/eto)")
    parser.add_argument("--rules", action="store_true", help=OPTION_HELP["rules"])
    args = parser.parse_args()
    spec = ENVIRONMENTS[args.env]
    given = {"data_dir": args.data_dir, "lists_dir": args.lists_dir, "rules": args.rules or None}
    for option, value in given.items():
        if value is not None and option not in spec.split_options:
            parser.error(f"--{option} is not an option of {args.env} (it takes: "
                         f"{', '.join('--' + o for o in spec.split_options) or 'none'})")
    if "lists_dir" in spec.split_options and args.lists_dir is None:
        given["lists_dir"] = default_lists_dir()
    options = {o: v for o, v in given.items() if o in spec.split_options and v is not None}
    try:
        splits = spec.generate_splits(**options)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    for split, tasks in splits.items():
        path = spec.task_class.split_path(split, {"data_dir": args.data_dir})
        write_split(path, tasks)
        print(f"{split}: {len(tasks)} tasks over {len({t.category for t in tasks})} types -> {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
