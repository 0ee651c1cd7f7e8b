"""Download the published ETO expert trajectories (needs the network), checked against the splits.

    python scripts/fetch_trajectories.py --output-dir data

Fetches ``webshop_sft.json``, ``sciworld_sft.json`` and ``alfworld_sft.json`` from the Hugging
Face dataset the ETO authors published, into ``--output-dir``; files already there are kept.
Each file must pass the SFT-data validator, and its records must belong to tasks of the train
split: every record gets the id of its task here (ALFWorld: the game folder, from the record's
``game_file``, or by its task text matched against the regenerated expert's episodes in
``outputs/expert/alfworld_train``), and a file where under 90% of the records map is refused
with one line and exit status 2. Offline, regenerate expert data from the environments instead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from eval_agent.published_data import check_published_file
from eto.io import DataError, replace_atomic
from eto.pipeline.paths import DEFAULT_OUTPUT_DIR, EXPERT, episode_folder

REPO_ID = "agent-eto/eto-sft-trajectory"
ENVS = ("webshop", "sciworld", "alfworld")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default="data", help="where the *_sft.json files go")
    parser.add_argument("--repo-id", default=REPO_ID, help="Hugging Face dataset holding the files")
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=ENVS, help="which environments")
    args = parser.parse_args(argv)

    from huggingface_hub import hf_hub_download, list_repo_files

    try:
        remote = list_repo_files(args.repo_id, repo_type="dataset")
    except Exception as error:  # network or hub errors: report in one line
        print(f"error: cannot list {args.repo_id}: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    lines = []
    for env_name in args.envs:
        target = os.path.join(args.output_dir, f"{env_name}_sft.json")
        if not os.path.exists(target):
            matches = sorted(f for f in remote if os.path.basename(f) == f"{env_name}_sft.json")
            if not matches:
                print(f"error: {args.repo_id} has no {env_name}_sft.json", file=sys.stderr)
                return 1
            os.makedirs(args.output_dir, exist_ok=True)
            shutil.copyfile(hf_hub_download(args.repo_id, matches[0], repo_type="dataset"), target + ".partial")
            try:
                line = check_published_file(env_name, target + ".partial", [episode_folder(DEFAULT_OUTPUT_DIR, EXPERT, env_name, "_train")])
            except (DataError, ValueError, FileNotFoundError) as error:
                os.remove(target + ".partial")
                print(f"error: downloaded {env_name}_sft.json: {error}", file=sys.stderr)
                return 2
            replace_atomic(target + ".partial", target)
            lines.append("fetched " + line)
        else:
            lines.append(f"{env_name}: {target} already present, kept")
    print("published ETO trajectories: " + "; ".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
