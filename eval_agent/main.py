"""Evaluate or explore: a served policy plays the tasks of a split; every episode is saved.

    python -m eval_agent.main --agent_config fastchat --model_name SmolLM2-135M-Instruct \\
        --exp_config sciworld --split test --max_tasks 5

Episodes go to ``<output_dir>/<model_name>/<exp_config><exp_name>/<task_id>.json`` with a
``_summary.json`` beside them; with ``--num_samples N`` each task is played N times and sample k
goes to ``.../sample_k/`` (Best-of-N, rejection sampling). Reruns skip finished episodes
(``--override`` replays them). With ``--prefix_data`` each episode starts by replaying a prefix of
the task's expert trajectory and the agent plays on from a drawn step (step-level exploration,
``eval_agent/prefixes.py``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional

from tqdm import tqdm

from eval_agent.agents import AGENTS
from eval_agent.config import check_at_least_one, config_name, load_config, load_task_config, run_cli
from eval_agent.prefixes import load_prefixes
from eval_agent.prompt import PROMPT_SETS, resolve_prompts
from eval_agent.results import best_and_mean_of_samples
from eval_agent.runner import EpisodeStore, run_tasks, sample_stores, summarize
from eval_agent.registry import ENVS, TASKS
from eval_agent.tasks import split_parts
from eto.pipeline.paths import DEFAULT_OUTPUT_DIR, episode_folder

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--agent_config", default="fastchat", help="configs/model/<name>.json (fastchat, openai, expert, rule, random) or a path")
    p.add_argument("--model_name", required=True, help="the served model's name (FastChat: the model folder's name)")
    p.add_argument("--exp_config", default="sciworld", help="configs/task/<name>.json (the environment) or a path")
    p.add_argument("--split", default="test", help="task split: train, dev (seen) or test (unseen)")
    p.add_argument("--exp_name", default="", help="suffix of the output folder name")
    p.add_argument("--output_dir", default=DEFAULT_OUTPUT_DIR, help="root folder for episode files")
    p.add_argument("--part_num", type=int, default=1, help="split the tasks into this many disjoint parts")
    p.add_argument("--part_idx", type=int, default=0, help="which part to run (0-based)")
    p.add_argument("--max_tasks", type=int, default=None, help="only the first K tasks of the split")
    p.add_argument("--concurrency", type=int, default=1, help="episodes in flight at once, each with its own env")
    p.add_argument("--max_consecutive_errors", type=int, default=5, help="stop after this many agent failures in a row")
    p.add_argument("--controller_address", default=None, help="override the FastChat controller address")
    p.add_argument("--api_base", default=None, help="override the OpenAI-compatible API base URL")
    p.add_argument("--temperature", type=float, default=None, help="override the sampling temperature")
    p.add_argument("--max_new_tokens", type=int, default=None, help="override the reply length limit (tokens)")
    p.add_argument("--prompts", default=None, choices=PROMPT_SETS,
                   help="instruction and examples: ours, the original ETO's (fetched by setup.sh when online), "
                        "or auto (the original's when present); default: the task config's, else ours")
    p.add_argument("--num_examples", type=int, default=None,
                   help="in-context examples in the prompt (default: the task config's, 1, as the original "
                        "evaluated and explored fine-tuned policies); 0 suits a small model that copies the example")
    p.add_argument("--num_samples", type=int, default=1,
                   help="play each task N times (use a sampling --temperature); sample k is saved in sample_k/")
    p.add_argument("--prefix_data", default=None,
                   help="expert trajectories (SFT format): replay each task's expert up to a drawn step, then "
                        "let the agent play on; tasks without one are skipped (step-level exploration)")
    p.add_argument("--prefix_seed", type=int, default=0, help="seeds the step drawn for each task with --prefix_data")
    p.add_argument("--allow_errors", action="store_true",
                   help="exit 0 even if episodes ended in an agent error (by default such a run exits 1: its "
                        "averages leave those tasks out, and a rerun replays them)")
    p.add_argument("--fail_on_errors", action="store_true", help=argparse.SUPPRESS)  # the default now; older scripts pass it
    p.add_argument("--override", action="store_true", help="replay episodes already saved (each file is replaced when its new episode ends)")
    p.add_argument("--verbose", action="store_true", help="print the dialogue as it happens")
    p.add_argument("--debug", action="store_true", help="debug logging; an unexpected error stops the run with a traceback")
    return p


def main(argv: Optional[list] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_cli(run, args)


def run(args: argparse.Namespace) -> int:
    check_at_least_one(args, "concurrency", "part_num", "max_tasks", "num_samples")
    agent_config = load_config("model", args.agent_config)
    agent_name = agent_config["agent_class"]
    if agent_name not in AGENTS:
        raise ValueError(f"unknown agent_class {agent_name!r} (choose from {', '.join(sorted(AGENTS))})")
    check_at_least_one(args, "max_new_tokens")
    for key, value in (("controller_address", args.controller_address), ("api_base", args.api_base),
                       ("temperature", args.temperature), ("max_new_tokens", args.max_new_tokens)):
        if value is not None:
            agent_config[key] = value

    # With the expert agent, the env's own expert plays: an upper bound for the split.
    # With a baseline agent (configs/model/rule.json, say), the env plays that baseline of its own.
    task_config, env_name = load_task_config(args.exp_config, expert=agent_name == "expert",
                                             baseline=agent_config.get("baseline") if agent_name == "baseline" else None)
    if agent_name == "baseline":
        task_config["baseline_seed"] = agent_config.get("seed", 0)
    num_examples = int(task_config.get("num_examples", 1)) if args.num_examples is None else args.num_examples
    if num_examples < 0:
        raise ValueError("--num_examples must be at least 0")
    prompts = resolve_prompts(env_name, args.prompts or task_config.get("prompts", "ours"))
    tasks = split_parts(TASKS[env_name].load_tasks(args.split, task_config)[: args.max_tasks], args.part_num, args.part_idx)
    prefixes = None
    if args.prefix_data:
        prefixes = load_prefixes(args.prefix_data, TASKS[env_name], args.prefix_seed)
        without = sum(t.task_id not in prefixes for t in tasks)
        tasks = [t for t in tasks if t.task_id in prefixes]
        print(f"step-level exploration: {len(tasks)} tasks from expert prefixes in {args.prefix_data}"
              + (f" ({without} without an expert trajectory skipped)" if without else ""))
    exp_folder = config_name(args.exp_config)
    agent = AGENTS[agent_name](agent_config, args.model_name)
    agent.check()  # a server that is not there: one line and exit 2, before anything is written
    store = EpisodeStore(episode_folder(args.output_dir, args.model_name, args.exp_config, args.exp_name))

    on_turn = (lambda task_id, role, text: tqdm.write(f"[{task_id}] {role}: {text}\n")) if args.verbose else None
    part = f" part {args.part_idx + 1}/{args.part_num}" if args.part_num > 1 else ""
    new = run_tasks(
        tasks, lambda: ENVS[env_name](task_config), agent, store, env_name=env_name,
        num_examples=num_examples, concurrency=args.concurrency,
        max_consecutive_errors=args.max_consecutive_errors, on_turn=on_turn,
        progress_desc=f"{exp_folder}/{args.split}{part}", debug=args.debug, override=args.override, prompts=prompts,
        samples=args.num_samples, prefixes=prefixes,
    )
    errors = 0
    for k, sample_store in enumerate(sample_stores(store, args.num_samples), 1):
        summary = summarize(tasks, sample_store, lambda t: t.category)
        errors += summary["n_errors"]
        played = f"{len(new)} this run, " if args.num_samples == 1 else ""
        sample = f" sample {k}/{args.num_samples}" if args.num_samples > 1 else ""
        print(f"{exp_folder}/{args.split}{part}{sample}: {summary['n']} episodes finished ({played}{summary['n_errors']} "
              f"with errors, {summary['n_missing']} not played) | average reward {summary['average_reward']:.4f} | "
              f"success rate {summary['success_rate']:.4f} | average steps {summary['average_steps']:.1f}")
    if args.num_samples > 1:
        best, mean = best_and_mean_of_samples(store.folder)
        print(f"{len(new)} episodes played this run")
        if best:
            print(f"{len(best)} tasks: best-of-{args.num_samples} average reward {sum(best.values()) / len(best):.4f}, "
                  f"mean-of-{args.num_samples} average reward {sum(mean.values()) / len(mean):.4f}")
    print(f"saved in {store.folder}/")
    if errors and not args.allow_errors:
        print(f"error: {errors} episodes ended in an agent error; rerun to replay them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
