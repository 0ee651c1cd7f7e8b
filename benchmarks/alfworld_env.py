"""How fast is the ALFWorld environment? Game load time and steps per second.

    python -m benchmarks.alfworld_env --num-games 12 [--split train] [--random-steps 20]

Through our env class (real TextWorld engine, the games setup.sh unpacked), for the first
``--num-games`` games of the split (round-robin over the six task types):
- load: ``reset`` (TextWorld compiles the game's PDDL, the demangler names the objects);
- walkthrough steps: the shipped winning actions (train games only);
- random steps: ``--random-steps`` commands an exploring policy might send: go to / open /
  close / examine one of the room's receptacles, or one of the walkthrough's actions (valid or
  not in the current state).
Prints mean / p50 / p95 load time and steps per second for each kind of step.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import time


from eval_agent.envs import AlfWorldEnv
from eval_agent.experts.alfworld import walkthrough
from eval_agent.config import load_config
from eval_agent.tasks import AlfWorldTask
from eval_agent.tasks.alfworld import DEFAULT_DATA_DIR


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-games", type=int, default=12)
    parser.add_argument("--split", default="train", choices=["train", "dev", "test"])
    parser.add_argument("--random-steps", type=int, default=20, help="random admissible commands per game")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = {**load_config("task", "alfworld"), "max_steps": 10_000}
    tasks = AlfWorldTask.load_split(args.split)[: args.num_games]
    rng = random.Random(args.seed)
    env = AlfWorldEnv(config)
    loads, walk_steps, walk_time, rand_steps, rand_time = [], 0, 0.0, 0, 0.0
    try:
        for task in tasks:
            started = time.perf_counter()
            env.reset(task)
            loads.append(time.perf_counter() - started)
            actions = walkthrough(os.path.join(DEFAULT_DATA_DIR, task.game_file))
            started = time.perf_counter()
            for action in actions:
                env.step(f"Action: {action}")
            walk_time += time.perf_counter() - started
            walk_steps += len(actions)

            opening = env.reset(task)
            places = re.findall(r"an? ([a-z]+ \d+)", opening.split("Your task is to:")[0])
            commands = [f"{verb} {place}" for verb in ("go to", "open", "close", "examine") for place in places]
            commands += actions + ["look", "inventory"]
            started = time.perf_counter()
            for _ in range(args.random_steps):
                env.step(f"Action: {rng.choice(commands)}")
                rand_steps += 1
                if env.state.finished:
                    break
            rand_time += time.perf_counter() - started
    finally:
        env.close()

    print(f"ALFWorld env, {len(tasks)} {args.split} games ({', '.join(sorted({t.task_type for t in tasks}))})")
    print(f"  load:              mean {statistics.mean(loads):.2f} s | p50 {percentile(loads, 50):.2f} s | "
          f"p95 {percentile(loads, 95):.2f} s")
    if walk_steps:
        print(f"  walkthrough steps: {walk_steps / walk_time:.1f} steps/s ({walk_steps} steps)")
    print(f"  random steps:      {rand_steps / rand_time:.1f} steps/s ({rand_steps} steps)")


if __name__ == "__main__":
    main()
