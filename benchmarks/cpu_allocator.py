"""Memory allocator for CPU training: glibc's malloc against jemalloc and tcmalloc (LD_PRELOAD).

    python -m benchmarks.cpu_allocator [--model models/SmolLM2-135M-Instruct] \\
        [--data data/sciworld_demo_sft.json] [--num-samples 4] [--epochs 1]

Training a 135M model on 2,000-token conversations allocates and frees tensors of hundreds of MB
at every step; glibc returns each to the kernel and faults it in again at the next step, which
shows as a large share of system time in ``top``. This runs ``fastchat/train/train.py`` (bf16
autocast, as the presets train on CPU) on the same conversations once per allocator found on this
machine and prints each run's training time (the trainer's ``train_runtime``), its train loss
(the allocator must not change it) and the speed-up over glibc. ``run_eto.sh`` preloads
``eto.engines.cpu_allocator()`` (tcmalloc, where installed) when it trains on CPU.
"""

from __future__ import annotations

import argparse
import os
import tempfile

from benchmarks.cpu_training_dtype import train as train_sft
from eto.engines import CPU_ALLOCATORS

# Measured for comparison only (slower here with its default settings).
OTHER_ALLOCATORS = ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2")


def train(args, preload: str, out_dir: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if preload:
        env["LD_PRELOAD"] = preload
    return train_sft(args, True, out_dir, env=env, label=preload or "glibc",
                     extra_args=("--model_max_length", "2048", "--per_device_train_batch_size", "1",  # as the presets train
                                 "--gradient_accumulation_steps", str(args.num_samples)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/SmolLM2-135M-Instruct")
    p.add_argument("--data", default="data/sciworld_demo_sft.json")
    p.add_argument("--num-samples", type=int, default=4, help="conversations (the first N of --data)")
    p.add_argument("--epochs", type=int, default=1)
    args = p.parse_args()
    candidates = [("glibc", "")] + [(os.path.basename(path), path) for path in CPU_ALLOCATORS + OTHER_ALLOCATORS
                                         if os.path.exists(path)]
    if len(candidates) == 1:
        print("no other allocator found (Debian: apt-get install libjemalloc2 libtcmalloc-minimal4)")
    baseline = None
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, preload) in enumerate(candidates):
            run = train(args, preload, f"{tmp}/{i}")
            baseline = baseline or run["seconds"]
            print(f"{name:28s} {run['seconds']:7.1f} s  train loss {run['loss']:.4f}  "
                  f"speed-up {baseline / run['seconds']:.2f}x", flush=True)


if __name__ == "__main__":
    main()
