"""Adversarial replies into every environment through the harness, at scale: the adversarial agent
(``eval_agent/agents/adversarial_agent.py``) plays train tasks of each environment until at least
``--steps`` replies were answered; prints, per environment, the steps, episodes, errors and time.

    python scripts/fuzz_envs.py --steps 10000 --output_dir /tmp/eto_fuzz

A rerun with the same ``--output_dir`` resumes (finished episodes are kept).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# About the steps an adversarial episode takes (it plays to the step limit, which for ScienceWorld
# depends on the task type): the number of tasks is --steps divided by these.
STEPS_PER_EPISODE = {"sciworld": 40, "alfworld": 40, "webshop": 10}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10_000, help="replies per environment, at least")
    parser.add_argument("--envs", default="sciworld,alfworld,webshop")
    parser.add_argument("--output_dir", default="outputs/fuzz")
    args = parser.parse_args()
    print(f"{'env':10} {'steps':>7} {'episodes':>8} {'errors':>6} {'seconds':>8}")
    failed = False
    for env in args.envs.split(","):
        tasks = -(-args.steps // STEPS_PER_EPISODE[env])
        start = time.time()
        result = subprocess.run([sys.executable, "-m", "eval_agent.main", "--agent_config", "adversarial", "--model_name",
                                 "adversarial", "--exp_config", env, "--split", "train", "--max_tasks", str(tasks),
                                 "--output_dir", args.output_dir], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        episodes = [json.load(open(p)) for p in glob.glob(os.path.join(args.output_dir, "adversarial", env, "[!_]*.json"))]
        errors = sum(e["meta"]["error"] is not None for e in episodes)
        steps = sum(e["meta"]["steps"] for e in episodes)
        print(f"{env:10} {steps:>7} {len(episodes):>8} {errors:>6} {time.time() - start:>8.0f}", flush=True)
        if result.returncode != 0 or errors:
            print(result.stderr[-2000:], file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
