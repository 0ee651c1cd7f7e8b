"""Do the two engines give the same greedy replies? FastChat's HF worker against its vLLM worker.

    python -m benchmarks.engine_agreement [--model-path M] [--data FILE_OR_FOLDER ...] [--num-prompts 100]

Takes ``--num-prompts`` agent prompts from episodes (every agent turn of the trajectories in
``--data``: SFT data files and/or folders of episode records, as ``eval_agent`` saves them; the
conversation up to that turn, as the policy sees it), has the HF worker (float32,
the reference: what the original ETO served) and the vLLM worker in float32 and in bfloat16 answer
each greedily through the real FastChat agent (same prompt building, stop strings and reply
budget as evaluation), and prints the share of replies identical to the HF worker's, and the share
whose action (the text after ``Action:``) is identical.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List

from eto.io import read_json
from eto.records import load_sft_data, to_messages
from eval_agent.agents import FastChatAgent
from eval_agent.config import load_config
from fastchat.launch import FastChatServers


def conversations(path: str) -> List[List[Dict[str, str]]]:
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "[!_]*.json")))
        return [read_json(f, "episode")["conversations"] for f in files]
    return [record["conversations"] for record in load_sft_data(path)]


def agent_prompts(paths: List[str], limit: int) -> List[List[Dict[str, str]]]:
    """Conversation prefixes ending on a user turn, spread over the records (round-robin by turn)."""
    per_record = []
    for turns in (t for path in paths for t in conversations(path)):
        messages = to_messages(turns)
        per_record.append([messages[: i + 1] for i, m in enumerate(messages) if m["role"] == "user"])
    prompts, depth = [], 0
    while len(prompts) < limit and any(depth < len(p) for p in per_record):
        prompts += [p[depth] for p in per_record if depth < len(p)]
        depth += 1
    return prompts[:limit]


def action_of(reply: str) -> str:
    return reply.split("Action:", 1)[1].strip() if "Action:" in reply else ""


def replies(model_path: str, engine: str, worker_args: List[str], prompts, max_new_tokens: int, concurrency: int):
    with tempfile.TemporaryDirectory() as logs, \
            FastChatServers(model_path, device="cpu", engine=engine, worker_args=worker_args, log_dir=logs) as servers:
        config = dict(load_config("model", "fastchat"), controller_address=servers.controller_url,
                      max_new_tokens=max_new_tokens, temperature=0.0)
        agent = FastChatAgent(config, servers.model_name)
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            texts = list(pool.map(lambda m: agent.generate(m).text, prompts))
        return texts, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", default="models/SmolLM2-135M-Instruct")
    parser.add_argument("--data", nargs="+", default=["data/sciworld_demo_sft.json"],
                        help="SFT data files or folders of episodes whose agent turns give the prompts")
    parser.add_argument("--num-prompts", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--output", help="also write every reply here (JSON)")
    args = parser.parse_args()

    prompts = agent_prompts(args.data, args.num_prompts)
    print(f"{len(prompts)} prompts from {' '.join(args.data)}; model {args.model_path}; greedy, up to {args.max_new_tokens} new tokens")
    runs = {"hf float32": ("hf", [], 1), "vllm float32": ("vllm", ["--dtype", "float32"], 16),
            "vllm bfloat16": ("vllm", ["--dtype", "bfloat16"], 16)}
    results = {}
    for name, (engine, worker_args, concurrency) in runs.items():
        results[name], seconds = replies(args.model_path, engine, worker_args, prompts, args.max_new_tokens, concurrency)
        print(f"  {name:<14} {seconds:7.1f} s for {len(prompts)} replies ({concurrency} in flight)", flush=True)

    reference = results["hf float32"]
    print(f"\n{'engine':<14} {'identical replies':>18} {'identical actions':>18}")
    for name, texts in results.items():
        same = sum(a == b for a, b in zip(texts, reference))
        same_action = sum(action_of(a) == action_of(b) for a, b in zip(texts, reference))
        print(f"{name:<14} {same:>4}/{len(texts)} ({100 * same / len(texts):5.1f}%) {same_action:>4}/{len(texts)} "
              f"({100 * same_action / len(texts):5.1f}%)")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump({"prompts": prompts, "replies": results}, f, indent=1)


if __name__ == "__main__":
    main()
