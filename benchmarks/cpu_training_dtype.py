"""Training precision on CPU: fp32 against bf16 autocast, through the real SFT trainer.

    python -m benchmarks.cpu_training_dtype [--model models/SmolLM2-135M-Instruct] \\
        [--data data/sciworld_demo_sft.json] [--num-samples 4] [--epochs 1]

Runs ``fastchat/train/train.py`` twice on the same conversations, once in fp32 and once with
``--bf16 True`` (on a CPU with avx512_bf16 or AMX the trainer keeps it as bf16 autocast over fp32
weights; elsewhere it drops it, and both runs are fp32), and prints each run's training time
(the trainer's ``train_runtime``: no model loading or saving), its train loss and the speed-up.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile

from eto.trainer_core import cpu_has_bf16


def train(args, bf16: bool, out_dir: str, extra_args=(), env=None, label: str = "") -> dict:
    """One run of the real SFT trainer on the first ``args.num_samples`` conversations of
    ``args.data``: its ``train_runtime`` (no loading or saving) and train loss."""
    cmd = [sys.executable, "fastchat/train/train.py", "--model_name_or_path", args.model, "--data_path", args.data,
           "--output_dir", out_dir, "--max_samples", str(args.num_samples), "--num_train_epochs", str(args.epochs),
           "--learning_rate", "1e-4", "--save_strategy", "no", "--report_to", "none", "--bf16", str(bf16), *extra_args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"training failed ({label or ('bf16' if bf16 else 'fp32')}): {result.stderr.strip().splitlines()[-1]}")
    runtime = re.search(r"'train_runtime': '([\d.]+)'", result.stdout + result.stderr)
    loss = re.search(r"train loss ([\d.]+)", result.stdout)
    return {"seconds": float(runtime.group(1)), "loss": float(loss.group(1))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/SmolLM2-135M-Instruct")
    p.add_argument("--data", default="data/sciworld_demo_sft.json")
    p.add_argument("--num-samples", type=int, default=4, help="conversations (the first N of --data)")
    p.add_argument("--epochs", type=int, default=1)
    args = p.parse_args()
    print(f"CPU has bf16 instructions: {cpu_has_bf16()}")
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = train(args, False, f"{tmp}/fp32")
        print(f"fp32            {fp32['seconds']:7.1f} s  train loss {fp32['loss']:.4f}", flush=True)
        bf16 = train(args, True, f"{tmp}/bf16")
        print(f"bf16 autocast   {bf16['seconds']:7.1f} s  train loss {bf16['loss']:.4f}")
    print(f"speed-up {fp32['seconds'] / bf16['seconds']:.2f}x")


if __name__ == "__main__":
    main()
