"""DPO epoch time: cached reference log-probs against a live reference model, same pairs, one run.

    python -m benchmarks.dpo_reference --model models/SmolLM2-135M-Instruct \\
        --data data_pm/sciworld_demo_pm_demo_1.json --num-pairs 8

For each mode a fresh copy of the policy trains one epoch on the same pairs, tokenized and
masked as fastchat/train/train_dpo.py does. ``cached`` computes the reference log-probs once
before training (TRL's ``precompute_ref_log_probs``, the trainer's default) and holds no
reference model; ``live`` runs the reference model forward at every step. The script prints
each mode's epoch time, the one-off precompute time, and the ratios (target: cached epoch <= 0.6x
live). Any pairs file in the construct_preference.py format works (``bash run_eto.sh demo``
writes one).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time



def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/SmolLM2-135M-Instruct")
    p.add_argument("--data", default="data_pm/sciworld_demo_pm_demo_1.json")
    p.add_argument("--num-pairs", type=int, default=8, help="pairs (the first N of --data)")
    p.add_argument("--max-length", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=1, help="pairs per step")
    args = p.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from eto.records import load_preference_data
    from eto.io import DataError
    from fastchat.train.train_dpo import (AgentTurnPreferenceCollator, DPODataArguments, DPOTrainingArguments,
                                          TrajectoryDPOTrainer, build_dataset)

    try:
        records = load_preference_data(args.data)[: args.num_pairs]
    except DataError as error:
        sys.exit(f"error: {error} (make pairs with: bash run_eto.sh demo)")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    dataset, stats = build_dataset(records, tokenizer, DPODataArguments(data_path=args.data), args.max_length, "bench")
    print(f"{len(dataset)} pairs, {stats['prompt_tokens']} prompt tokens, {stats['agent_tokens']} agent tokens; "
          f"model {args.model}; torch threads {torch.get_num_threads()}", flush=True)

    results = {}
    for mode in ("cached", "live"):
        config = DPOTrainingArguments(
            output_dir=tempfile.mkdtemp(prefix="dpo-bench-"), precompute_ref_log_probs=mode == "cached",
            per_device_train_batch_size=args.batch_size, num_train_epochs=1, learning_rate=1e-6,
            max_length=args.max_length, save_strategy="no", report_to="none", logging_steps=1000,
            disable_tqdm=True, seed=0,
        )
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
        ref = None if mode == "cached" else AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
        collator = AgentTurnPreferenceCollator(pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        started = time.perf_counter()
        trainer = TrajectoryDPOTrainer(model=model, ref_model=ref, args=config, data_collator=collator,
                                       train_dataset=dataset, processing_class=tokenizer)
        setup_s = time.perf_counter() - started  # includes the reference pass when cached
        started = time.perf_counter()
        trainer.train()
        results[mode] = (setup_s, time.perf_counter() - started)
        print(f"{mode:>6}: setup {setup_s:7.1f} s (reference pass included when cached) | epoch {results[mode][1]:7.1f} s",
              flush=True)

    (cached_setup, cached_epoch), (live_setup, live_epoch) = results["cached"], results["live"]
    print(f"\nepoch time, cached / live: {cached_epoch / live_epoch:.2f}x (target <= 0.6x)")
    print(f"with the one-off reference pass counted in: {(cached_setup + cached_epoch) / (live_setup + live_epoch):.2f}x "
          f"for one epoch; it is paid once per round, whatever the number of epochs")


if __name__ == "__main__":
    main()
