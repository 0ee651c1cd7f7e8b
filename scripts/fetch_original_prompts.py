"""Fetch the original ETO's instruction and in-context example files (needs the network).

    python scripts/fetch_original_prompts.py

Downloads, for WebShop, ScienceWorld and ALFWorld, the instruction (``<env>_inst.txt``) and the
in-context examples (``<env>_icl.json``) of the original ETO repository into
``eval_agent/prompt/original/`` (git-ignored: the project never ships the original's text).
``--prompts original`` (or ``auto``, the full preset's choice) then uses them. Files already
there are kept; a file that is not what the loader expects is refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request

from eval_agent.prompt import ORIGINAL_DIR, examples_from_turns, original_paths
from eto.io import write_text_atomic

BASE = "https://raw.githubusercontent.com/Yifan-Song793/ETO/main/eval_agent/prompt"
ENVS = ("webshop", "sciworld", "alfworld")


def check_examples(text: str) -> None:
    examples = json.loads(text)
    if not (isinstance(examples, list) and examples and all(isinstance(e, list) and e for e in examples)):
        raise ValueError("expected a JSON list of examples, each a list of turns")
    for example in examples:
        if any(not isinstance(t, dict) or not isinstance(t.get("content"), str) for t in example):
            raise ValueError("every turn needs a 'content' string")
        examples_from_turns(example)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default=BASE, help="the original repository's eval_agent/prompt folder")
    args = parser.parse_args(argv)
    os.makedirs(ORIGINAL_DIR, exist_ok=True)
    fetched = []
    for env_name in ENVS:
        inst_path, icl_path = original_paths(env_name)
        for path, remote in ((inst_path, f"instructions/{env_name}_inst.txt"), (icl_path, f"icl_examples/{env_name}_icl.json")):
            if os.path.isfile(path):
                continue
            try:
                with urllib.request.urlopen(f"{args.base_url}/{remote}", timeout=60) as response:
                    text = response.read().decode("utf-8")
                if path.endswith(".json"):
                    check_examples(text)
            except (OSError, ValueError) as error:
                print(f"error: {remote}: {error}", file=sys.stderr)
                return 1
            write_text_atomic(path, text)
            fetched.append(os.path.basename(path))
    print(f"original ETO prompts in {os.path.relpath(ORIGINAL_DIR)}: fetched {', '.join(fetched) or 'none (all present)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
