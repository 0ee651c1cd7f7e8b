"""Exploration throughput: FastChat's HF worker one episode at a time (the original ETO's way)
against FastChat's vLLM worker with many episodes in flight, on the same ScienceWorld train tasks.

    python -m benchmarks.exploration_throughput [--model-path M] [--num-tasks 16] [--max-steps 8]
                                                [--concurrency 4,8,16] [--skip-hf]

For each setting it starts a controller and one worker, explores the first ``--num-tasks`` train
tasks greedily through the real harness (``eval_agent.runner.run_tasks``: FastChat agent, real
ScienceWorld, one env per episode in flight) and prints episodes/min, agent steps/min and generated
tokens/s (tokens of the replies, by the model's tokenizer), each over the exploration's wall time
(server start-up is printed apart), and each setting's ratio to the HF worker. ``--max-steps``
caps every episode so that both engines play a comparable amount; the target is >= 5x the HF
worker's episodes/min on this machine's 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from eto.chat_format import load_tokenizer
from eval_agent.agents import FastChatAgent
from eval_agent.config import load_config
from eval_agent.envs import SciWorldEnv
from eval_agent.runner import EpisodeStore, run_tasks
from eval_agent.tasks import SciWorldTask
from fastchat.launch import FastChatServers


def explore(model_path: str, engine: str, concurrency: int, tasks, task_config, args) -> dict:
    tokenizer = load_tokenizer(model_path)
    with tempfile.TemporaryDirectory() as logs, tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        with FastChatServers(model_path, device="cpu", engine=engine, log_dir=logs,
                             torch_threads=args.torch_threads) as servers:
            startup = time.perf_counter() - started
            config = dict(load_config("model", "fastchat"), controller_address=servers.controller_url,
                          max_new_tokens=args.max_new_tokens, temperature=0.0)
            agent = FastChatAgent(config, servers.model_name)
            started = time.perf_counter()
            records = run_tasks(tasks, lambda: SciWorldEnv(task_config), agent, EpisodeStore(out), env_name="sciworld",
                                num_examples=args.num_examples, concurrency=concurrency,
                                progress_desc=f"{engine} x{concurrency}")
            wall = time.perf_counter() - started
    replies = [t["value"] for r in records for t in r["conversations"][r["meta"]["task_turn"] + 1:] if t["from"] == "gpt"]
    tokens = sum(len(tokenizer(text, add_special_tokens=False).input_ids) for text in replies)
    errors = sum(1 for r in records if r["meta"]["error"])
    return {"engine": engine, "concurrency": concurrency, "startup_s": startup, "wall_s": wall,
            "episodes": len(records), "errors": errors, "steps": len(replies), "tokens": tokens,
            "reward": sum(r["meta"]["reward"] for r in records) / max(len(records), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", default="models/SmolLM2-135M-Instruct")
    parser.add_argument("--num-tasks", type=int, default=16)
    parser.add_argument("--max-steps", type=int, default=8, help="cap on steps per episode")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--num-examples", type=int, default=1, help="in-context examples in the prompt")
    parser.add_argument("--concurrency", default="16", help="episodes in flight for the vLLM worker, comma-separated")
    parser.add_argument("--torch-threads", type=int, default=2, help="threads of the HF worker (vLLM binds its own)")
    parser.add_argument("--skip-hf", action="store_true", help="only the vLLM settings (no ratio then)")
    args = parser.parse_args()

    task_config = load_config("task", "sciworld")
    task_config["max_steps"] = {k: min(v, args.max_steps) for k, v in task_config["max_steps"].items()}
    tasks = SciWorldTask.load_split("train")[: args.num_tasks]
    settings = ([] if args.skip_hf else [("hf", 1)]) + [("vllm", int(c)) for c in args.concurrency.split(",")]
    print(f"{len(tasks)} ScienceWorld train tasks, <= {args.max_steps} steps each, greedy, <= {args.max_new_tokens} "
          f"new tokens, {args.num_examples} in-context example(s); model {args.model_path}", flush=True)
    rows = []
    for engine, concurrency in settings:
        row = explore(args.model_path, engine, concurrency, tasks, task_config, args)
        rows.append(row)
        print(f"  {engine} x{concurrency}: {row['episodes']} episodes ({row['errors']} errors), {row['steps']} steps in "
              f"{row['wall_s']:.1f} s (start-up {row['startup_s']:.1f} s)", flush=True)

    base = rows[0] if not args.skip_hf else None
    print(f"\n{'setting':<10} {'episodes/min':>12} {'steps/min':>10} {'tokens/s':>9} {'avg reward':>10} {'x HF (episodes/min)':>20}")
    for row in rows:
        per_min = 60 * row["episodes"] / row["wall_s"]
        ratio = f"{per_min / (60 * base['episodes'] / base['wall_s']):.1f}x" if base else "-"
        print(f"{row['engine'] + ' x' + str(row['concurrency']):<10} {per_min:>12.2f} {60 * row['steps'] / row['wall_s']:>10.1f} "
              f"{row['tokens'] / row['wall_s']:>9.1f} {row['reward']:>10.3f} {ratio:>20}")


if __name__ == "__main__":
    main()
