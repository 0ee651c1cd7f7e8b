"""SFT throughput: packed (padding-free) against padded batches, on the same data in one run.

    python -m benchmarks.sft_throughput --model models/SmolLM2-135M-Instruct \\
        --data data/sciworld_sft.json --num-samples 16 --max-length 1024 --batch-size 4

For each batching mode a fresh copy of the model trains one epoch on the same conversations
(same tokenization and truncation as fastchat/train/train.py), and the script prints the
conversation tokens trained per second, wall time, and how many of the tokens the model
processed were padding. Modes: ``packed`` (TRL best-fit-decreasing packing, padding-free),
``padded`` (random batches padded to their longest) and ``padded-grouped`` (batches of similar
length, transformers' group_by_length sampler).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time


MODES = ("packed", "padded", "padded-grouped")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/SmolLM2-135M-Instruct")
    p.add_argument("--data", default="data/sciworld_sft.json")
    p.add_argument("--num-samples", type=int, default=16, help="conversations (the first N of --data)")
    p.add_argument("--max-length", type=int, default=1024, help="tokens per sequence / packed row")
    p.add_argument("--batch-size", type=int, default=4, help="rows per batch")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {', '.join(MODES)}")
    args = p.parse_args()

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from eto.io import DataError
    from eto.records import load_sft_data
    from fastchat.train.train import tokenize_records

    try:
        records = load_sft_data(args.data)[: args.num_samples]
    except DataError as error:
        sys.exit(f"error: {error} (make one with: python -m eval_agent.expert_trajectories --max_tasks 48 "
                 "--output data/sciworld_sft_48.json)")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    columns, stats = tokenize_records(records, tokenizer, args.max_length, "truncate")
    print(f"{len(columns['input_ids'])} conversations, {stats['tokens']} tokens (max length {args.max_length}, "
          f"{stats['truncated']} truncated); model {args.model}; torch threads {torch.get_num_threads()}")

    rows = []
    for mode in args.modes.split(","):
        if mode not in MODES:
            sys.exit(f"error: unknown mode {mode!r} (choose from {', '.join(MODES)})")
        config = SFTConfig(
            output_dir=tempfile.mkdtemp(prefix="sft-bench-"), packing=mode == "packed", max_length=args.max_length,
            per_device_train_batch_size=args.batch_size, num_train_epochs=1, learning_rate=1e-5, bf16=False,
            gradient_checkpointing=False, save_strategy="no", report_to="none", logging_steps=1000,
            disable_tqdm=True, seed=0,
            train_sampling_strategy="group_by_length" if mode == "padded-grouped" else "random",
        )
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
        trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_dict(columns), processing_class=tokenizer)
        # One epoch trains every conversation once in every mode; the rest of what is processed is padding.
        processed = sum(batch["input_ids"].numel() for batch in trainer.get_train_dataloader())
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
        rows.append((mode, seconds, stats["tokens"] / seconds, 1 - stats["tokens"] / processed))
        print(f"{mode:15s} {seconds:8.1f} s  {stats['tokens'] / seconds:8.1f} conversation tokens/s  "
              f"padding {100 * rows[-1][3]:5.1f}% of processed tokens", flush=True)

    base = dict((r[0], r[2]) for r in rows)
    if "packed" in base and "padded" in base:
        print(f"packed / padded speed-up: {base['packed'] / base['padded']:.2f}x")


if __name__ == "__main__":
    main()
