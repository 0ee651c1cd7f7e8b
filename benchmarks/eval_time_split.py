"""Where does exploration time go? Model generation against env, HTTP and prompt building.

    python -m benchmarks.eval_time_split --num-tasks 10 [--max-steps 8]

Starts a controller and one worker on the model (default: the bundled SmolLM2), explores the
first ``--num-tasks`` ScienceWorld train tasks through the real harness (FastChat agent), and
prints, over all episodes, the share of wall time spent in each phase:
- generate: the ``/worker_generate_stream`` request (model generation plus streaming it back);
- prompt: rendering the conversation and counting its tokens at the worker (one small request);
- env: ScienceWorld (task load and steps);
- other: everything else (the harness itself).
``--max-steps`` caps each episode, to bound the run time; the shares are per step anyway.
The target is at least 90% of the wall time in generation.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict


from eval_agent.agents import FastChatAgent
from eval_agent.envs import SciWorldEnv
from eval_agent.config import load_config
from eval_agent.runner import EpisodeStore, run_tasks
from eval_agent.tasks import SciWorldTask
from fastchat.launch import FastChatServers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", default="models/SmolLM2-135M-Instruct")
    parser.add_argument("--num-tasks", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=8, help="cap on steps per episode (0: the task's own limit)")
    args = parser.parse_args()

    task_config = load_config("task", "sciworld")
    if args.max_steps:
        task_config["max_steps"] = {k: min(v, args.max_steps) for k, v in task_config["max_steps"].items()}
    tasks = SciWorldTask.load_split("train")[: args.num_tasks]
    with FastChatServers(args.model_path, device="cpu") as servers, tempfile.TemporaryDirectory() as out:
        agent = FastChatAgent(dict(load_config("model", "fastchat"), controller_address=servers.controller_url),
                              servers.model_name)
        started = time.perf_counter()
        records = run_tasks(tasks, lambda: SciWorldEnv(task_config), agent, EpisodeStore(out), env_name="sciworld")
        wall = time.perf_counter() - started

    totals = defaultdict(float)
    for record in records:
        for phase, seconds in record["meta"]["timing"].items():
            totals[phase] += seconds
    steps = sum(r["meta"]["steps"] for r in records)
    phases = {"generate": totals["generate_s"], "prompt": totals["prompt_s"], "env": totals["env_s"]}
    phases["other"] = wall - sum(phases.values())
    print(f"{len(records)} episodes, {steps} steps, {wall:.1f} s wall ({wall / max(steps, 1):.2f} s/step)")
    for phase, seconds in phases.items():
        print(f"  {phase:<9} {seconds:8.1f} s  {100 * seconds / wall:5.1f}%")
    print(f"generation share: {100 * phases['generate'] / wall:.1f}% (target >= 90%)")


if __name__ == "__main__":
    main()
