"""Download the published ETO expert trajectories (needs the network).

    python scripts/fetch_trajectories.py --output-dir data

Fetches ``webshop_sft.json``, ``sciworld_sft.json`` and ``alfworld_sft.json`` from the
Hugging Face dataset the ETO authors published, into ``--output-dir``. Files already there
are kept. Offline, regenerate expert data from the environments instead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fastchat.train.sft_data import SFTDataError, load_sft_data  # noqa: E402

REPO_ID = "agent-eto/eto-sft-trajectory"
TASKS = ("webshop", "sciworld", "alfworld")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default="data", help="where the *_sft.json files go")
    parser.add_argument("--repo-id", default=REPO_ID, help="Hugging Face dataset holding the files")
    args = parser.parse_args(argv)

    from huggingface_hub import hf_hub_download, list_repo_files

    try:
        remote = list_repo_files(args.repo_id, repo_type="dataset")
    except Exception as error:  # network or hub errors: report in one line
        sys.exit(f"error: cannot list {args.repo_id}: {str(error).splitlines()[0]}")
    fetched, kept = [], []
    for task in TASKS:
        target = os.path.join(args.output_dir, f"{task}_sft.json")
        if os.path.exists(target):
            kept.append(task)
            continue
        matches = sorted(f for f in remote if os.path.basename(f) == f"{task}_sft.json")
        if not matches:
            sys.exit(f"error: {args.repo_id} has no {task}_sft.json")
        local = hf_hub_download(args.repo_id, matches[0], repo_type="dataset")
        os.makedirs(args.output_dir, exist_ok=True)
        shutil.copyfile(local, target + ".partial")
        try:
            load_sft_data(target + ".partial")  # the same validator the trainer uses
        except SFTDataError as error:
            os.remove(target + ".partial")
            sys.exit(f"error: downloaded {task}_sft.json is not usable: {error}")
        os.replace(target + ".partial", target)
        fetched.append(task)
    print(f"published ETO trajectories: fetched {fetched or 'none'}, already present {kept or 'none'}")


if __name__ == "__main__":
    main()
