"""How each model scores a DPO round's pairs: the summed log-probability of the chosen and the
rejected trajectory's agent turns, averaged over the pairs, for each model given.

    python scripts/pair_logprobs.py --pairs data_pm/sciworld_pm_demo_1.json \\
        --models checkpoints/demo-...-sft checkpoints/demo-...-dpo-iter-1

With the round's reference (its starting policy) and the model DPO trained from it, this shows what
the margin was made of: whether the chosen trajectories became more likely, or both fell and the
rejected ones fell further (DPO's known displacement of the chosen likelihood). The trainer's own
logged log-probabilities are of each step's batch, so they cannot show it. Conversations are
encoded as the DPO trainer encodes them and cut at --max_length tokens.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import torch

# This repository's fastchat/train (not the installed FastChat's), from whatever folder it runs.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from eto.io import DataError
from eto.records import load_preference_data


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", required=True, help="a pairs file (construct_preference.py output)")
    p.add_argument("--models", nargs="+", required=True, help="model folders, e.g. the round's reference and its DPO model")
    p.add_argument("--max_length", type=int, default=2048, help="tokens per conversation, as in training")
    p.add_argument("--max_pairs", type=int, default=None)
    args = p.parse_args(argv)
    try:
        pairs = load_preference_data(args.pairs)[: args.max_pairs]
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not pairs:
        print(f"error: no pairs in {args.pairs}", file=sys.stderr)
        return 2
    from transformers import AutoModelForCausalLM

    from eto.chat_format import load_tokenizer
    from fastchat.train.train_dpo import pair_logprobs

    print(f"{len(pairs)} pairs from {args.pairs}; mean summed log-probability of the agent's turns")
    print("| model | chosen | rejected | chosen - rejected |\n|---|---|---|---|")
    for path in args.models:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        tokenizer = load_tokenizer(path)
        chosen, rejected = zip(*pair_logprobs(model, tokenizer, pairs, args.max_length))
        print(f"| {path} | {statistics.mean(chosen):.1f} | {statistics.mean(rejected):.1f} | "
              f"{statistics.mean(c - r for c, r in zip(chosen, rejected)):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
