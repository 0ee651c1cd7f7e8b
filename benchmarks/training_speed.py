"""CPU training speed of the SFT and DPO trainers, each speed-up off and on, in one run.

    python -m benchmarks.training_speed [--preset demo] [--model models/SmolLM2-135M-Instruct] \\
        [--sft-data data/sciworld_demo_sft.json] [--dpo-data data_pm/sciworld_demo_pm_demo_1.json] \\
        [--variants before,labelled-head,unpadded-rows,shared-prompt,cpu-head,own-weights,clip-in-adamw] [--trainers sft,dpo] \\
        [--repeats 2] [--fp32]

The data are what ``bash run_eto.sh demo`` writes (its expert trajectories and its first round's
pairs). Each variant runs the real trainer (``fastchat/train/train.py``, ``train_dpo.py``) as its
own process, with the command ``run_eto.sh`` gives it under ``--preset`` (batch, learning rate,
``--bf16`` as the preset's ``cpu_train_args``), for one epoch, without checkpoints, and reads the
finished folder's ``eto_training.json``: the loss at every step (full precision), the seconds of
each optimizer step and of the trainer's setup (for DPO, the reference log-probabilities).

Printed for each trainer and variant:
- trained tokens/s: the data's tokens (no padding; DPO: prompt + continuation, for each side) per
  second of the training loop, and, for DPO, per second of setup + loop;
- achieved GFLOP/s: the FLOPs the loss needs, per second of the loop. Per sequence of T tokens,
  A of them labelled: 6 * N_backbone * T (forward 2, backward 4; N_backbone = the parameters
  without the token embedding), + 6 * L * d * T^2 (causal attention, half the T^2 pairs, over L
  layers of width d), + 6 * d * V * A (the LM head, at the labelled positions only: the rest is
  not needed for the loss, so a variant that projects them does unneeded work);
- share of peak: that over the best of 5 square matrix products of 2,048 on the same threads, in
  bf16 when the trainers autocast to bf16 on this CPU, fp32 otherwise (what this CPU achieves on
  the kind of operation that dominates training; a datasheet peak would be higher);
- then the loss at each step, side by side, and its largest difference from the first variant
  (bf16 rounds differently when the work is split differently; ``--fp32`` shows the equality).

With ``--repeats N`` the variants run in turn N times (a round robin); each row is the run with the
median loop time, and its speed-up the median of the N ratios to the baseline's run of the same
round (this machine's pace drifted by up to 2x within hours, so only runs close in time compare).

``compile`` (``--torch_compile True``) compiles the model with inductor inside the first steps;
its first step's seconds are printed apart from the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Sequence, Tuple

# Each variant: (what it is, extra trainer flags, environment changes). "before" is the trainers
# as they were before issue 37; the rest are today's defaults with one thing changed.
_HEAD, _ROWS, _PROMPT = ["--trl_lm_head_on_cpu", "True"], ["--padded_batches_on_cpu", "True"], ["--share_prompts_on_cpu", "False"]
_MAPPED, _CLIP = ["--file_mapped_weights_on_cpu", "True"], ["--separate_clip_pass_on_cpu", "True"]
VARIANTS: Dict[str, Tuple[str, List[str], Dict[str, str]]] = {
    "before": ("the trainers before issue 37", ["--lm_head_all_positions", "True", *_ROWS, *_HEAD, *_MAPPED, *_CLIP], {}),
    "labelled-head": ("+ LM head at labelled positions only", [*_ROWS, *_HEAD, *_MAPPED, *_CLIP], {}),
    "unpadded-rows": ("+ each row of a padded batch alone", [*_PROMPT, *_HEAD, *_MAPPED, *_CLIP], {}),
    "shared-prompt": ("+ a pair's shared prompt once", [*_HEAD, *_MAPPED, *_CLIP], {}),
    "cpu-head": ("+ eto.cpu_lm_head instead of TRL's kernel", [*_MAPPED, *_CLIP], {}),
    "own-weights": ("+ weights out of the file mapping", _CLIP, {}),
    "clip-in-adamw": ("+ the gradient clip inside the fused AdamW step (today's defaults)", [], {}),
    "no-tcmalloc": ("glibc's malloc instead of tcmalloc", [], {"LD_PRELOAD": ""}),
    "tcmalloc-keeps": ("tcmalloc never returns memory to the kernel", [], {"TCMALLOC_RELEASE_RATE": "0"}),
    "huge-pages": ("PyTorch's CPU allocator asks for transparent huge pages", [], {"THP_MEM_ALLOC_ENABLE": "1"}),
    "glibc-huge-pages": ("glibc's malloc with transparent huge pages", [],
                         {"LD_PRELOAD": "", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}),
    "one-thread": ("1 torch thread", [], {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}),
    "bind-cores": ("OpenMP threads bound to cores", [], {"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"}),
    "compile-layers": ("torch.compile of each decoder layer", ["--compile_decoder_layers", "True"], {}),
    "compile": ("torch.compile of the whole model (transformers' --torch_compile)", ["--torch_compile", "True"], {}),
}


def peak_gflops(dtype_name: str, size: int = 2048, repeats: int = 5) -> float:
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.matmul(a, b)  # warm up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * size ** 3 / best / 1e9


def sequences(trainer: str, data: str, model: str, max_length: int) -> List[Tuple[int, int]]:
    """(tokens, labelled tokens) of every sequence the trainer's policy reads in an epoch,
    tokenized as the trainer tokenizes them."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    if trainer == "sft":
        from eto.records import load_sft_data
        from fastchat.train.train import tokenize_records

        columns, _ = tokenize_records(load_sft_data(data), tokenizer, max_length, "truncate")
        return [(len(ids), sum(label != -100 for label in labels))
                for ids, labels in zip(columns["input_ids"], columns["labels"])]
    from eto.records import load_preference_data
    from fastchat.train.train_dpo import tokenize_pair, truncate_pair

    out = []
    for record in load_preference_data(data):
        pair, _ = truncate_pair(tokenize_pair(record, tokenizer), max_length, None, None)
        for side in ("chosen", "rejected"):
            out.append((len(pair["prompt_ids"]) + len(pair[f"{side}_ids"]), sum(pair[f"{side}_mask"])))
    return out


def model_shape(model: str) -> Tuple[int, int, int, int]:
    """(backbone parameters without the token embedding, layers, width, vocabulary)."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model)
    d, L, V, ff = c.hidden_size, c.num_hidden_layers, c.vocab_size, c.intermediate_size
    kv = c.num_key_value_heads * (d // c.num_attention_heads)
    per_layer = d * d * 2 + d * kv * 2 + 3 * d * ff + 2 * d  # q, o; k, v; gated MLP; two norms
    return L * per_layer + d, L, d, V


def training_flops(seqs: Sequence[Tuple[int, int]], shape: Tuple[int, int, int, int]) -> float:
    n_backbone, L, d, V = shape
    return sum(6 * n_backbone * t + 6 * L * d * t * t + 6 * d * V * a for t, a in seqs)


def command(trainer: str, args, out_dir: str) -> List[str]:
    """The command run_eto.sh runs for this trainer under the preset, on this data."""
    from eto.pipeline import commands
    from eto.pipeline.settings import RunSettings, load_preset

    preset = load_preset(args.preset, "sciworld")
    settings = RunSettings(task="sciworld", exp="bench", model_path=args.model, save_dir=out_dir,
                           preset_name=args.preset, preset=preset)  # no allocator: the env sets it
    if trainer == "sft":
        cmd = commands.sft(settings, args.model, args.sft_data, out_dir)
    else:
        cmd = commands.dpo(settings, args.model, args.dpo_data, out_dir, preset.round_value("dpo_beta", 1),
                           preset.round_value("dpo_lr", 1))
    assert cmd[0] == "python", cmd  # the benchmark sets the environment itself
    return [sys.executable, *cmd[1:], "--num_train_epochs", "1", "--save_strategy", "no", "--logging_steps", "1",
            "--disable_tqdm", "True"] + (["--bf16", "False"] if args.fp32 else [])


def run_variant(trainer: str, variant: str, args, workdir: str, repeat: int) -> dict:
    from eto.engines import cpu_allocator

    _, flags, env_changes = VARIANTS[variant]
    out_dir = os.path.join(workdir, f"{trainer}-{variant}-{repeat}")
    env = {**os.environ, "LD_PRELOAD": cpu_allocator(), **env_changes}
    if not env["LD_PRELOAD"]:
        del env["LD_PRELOAD"]
    started = time.perf_counter()
    result = subprocess.run(command(trainer, args, out_dir) + flags, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"error: {trainer} {variant} failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    record = json.load(open(os.path.join(out_dir, "eto_training.json")))
    return {"wall": time.perf_counter() - started, "setup": record["seconds"]["trainer_setup"],
            "steps": record["seconds"]["steps"], "losses": [e["loss"] for e in record["log_history"] if "loss" in e]}


def paired_speedups(runs: Dict[str, List[dict]]) -> Dict[str, List[float]]:
    """Each variant's speed-up over the first one within each round of the round robin: runs close
    in time share the machine's pace, which drifted by up to 2x over an afternoon here."""
    base = [sum(r["steps"]) for r in next(iter(runs.values()))]
    return {v: [b / sum(r["steps"]) for b, r in zip(base, rs)] for v, rs in runs.items()}


def report(trainer: str, rows: Dict[str, dict], speedups: Dict[str, List[float]], tokens: int, flops: float,
           peak: float) -> None:
    print(f"\n{trainer.upper()}: {tokens} tokens an epoch, {flops / 1e12:.2f} TFLOP needed")
    print(f"{'variant':15s} {'loop s':>7s} {'tokens/s':>9s} {'GFLOP/s':>8s} {'of peak':>7s} {'speed-up':>8s}"
          f" {'setup s':>7s} {'tok/s all':>9s} {'1st step':>8s} {'other steps':>11s}")
    for name, r in rows.items():
        loop = sum(r["steps"])
        rest = r["steps"][1:]
        ratios = sorted(speedups[name])
        print(f"{name:15s} {loop:7.1f} {tokens / loop:9.1f} {flops / loop / 1e9:8.1f} {flops / loop / 1e9 / peak:7.1%}"
              f" {statistics.median(ratios):7.2f}x {r['setup']:7.1f} {tokens / (loop + r['setup']):9.1f} {r['steps'][0]:8.2f}"
              f" {sum(rest) / max(1, len(rest)):9.2f} s")
    if len(next(iter(speedups.values()))) > 1:
        print("speed-up: the median over rounds of the round robin of each round's ratio; each round's: " +
              "; ".join(f"{v} " + " ".join(f"{x:.2f}x" for x in xs) for v, xs in list(speedups.items())[1:]))
    names = list(rows)
    print(f"loss at each step ({', '.join(names)}):")
    first = rows[names[0]]["losses"]
    for i, loss in enumerate(first):
        print(f"  step {i + 1:3d} " + " ".join(f"{rows[n]['losses'][i]:.6f}" if i < len(rows[n]["losses"]) else "-"
                                              for n in names))
    for n in names[1:]:
        diffs = [abs(a - b) for a, b in zip(first, rows[n]["losses"])]
        print(f"  largest |loss - {names[0]}| for {n}: {max(diffs):.2e} (first step {diffs[0]:.2e})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="demo", help="whose trainer flags (presets/<name>.toml)")
    p.add_argument("--model", default="models/SmolLM2-135M-Instruct")
    p.add_argument("--sft-data", default="data/sciworld_demo_sft.json")
    p.add_argument("--dpo-data", default="data_pm/sciworld_demo_pm_demo_1.json")
    p.add_argument("--trainers", default="sft,dpo")
    p.add_argument("--variants", default="before,labelled-head,unpadded-rows,shared-prompt,cpu-head,own-weights,clip-in-adamw",
                   help=f"comma-separated, the first is the baseline: {', '.join(VARIANTS)}")
    p.add_argument("--max-length", type=int, default=2048, help="the trainers' --model_max_length")
    p.add_argument("--repeats", type=int, default=1, help="runs of each variant; the median run is shown")
    p.add_argument("--fp32", action="store_true", help="train in fp32 (--bf16 False), where equal losses show to 1e-5")
    args = p.parse_args()
    variants = args.variants.split(",")
    if len(set(variants)) < len(variants):
        sys.exit("error: a variant is listed twice in --variants (use --repeats to run one again)")
    for v in variants:
        if v not in VARIANTS:
            sys.exit(f"error: unknown variant {v!r} (choose from {', '.join(VARIANTS)})")
    for trainer in args.trainers.split(","):
        if trainer not in ("sft", "dpo"):
            sys.exit(f"error: unknown trainer {trainer!r} (choose from sft, dpo)")
    for path in (args.sft_data, args.dpo_data):
        if not os.path.isfile(path):
            sys.exit(f"error: no {path} (bash run_eto.sh demo writes it)")

    import platform

    import torch

    from eto.trainer_core import cpu_has_bf16

    flags = command("sft", args, "unused")
    asks_bf16 = [b.lower() == "true" for a, b in zip(flags, flags[1:]) if a == "--bf16"][-1:] == [True]  # the last wins
    bf16 = asks_bf16 and cpu_has_bf16()  # the trainers' rule: autocast only where the CPU has bf16
    peak = peak_gflops("bfloat16" if bf16 else "float32")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(f"CPU: {cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"bf16 instructions: {cpu_has_bf16()}; peak (best 2048^3 {'bf16' if bf16 else 'fp32'} matmul): {peak:.0f} GFLOP/s")
    for v in variants:
        print(f"  {v}: {VARIANTS[v][0]}")
    shape = model_shape(args.model)
    with tempfile.TemporaryDirectory(prefix="training-speed-") as workdir:
        for trainer in args.trainers.split(","):
            seqs = sequences(trainer, args.sft_data if trainer == "sft" else args.dpo_data, args.model, args.max_length)
            runs: Dict[str, List[dict]] = {v: [] for v in variants}
            for repeat in range(args.repeats):  # round robin, so that a slow spell of the machine hits every variant
                for v in variants:
                    runs[v].append(run_variant(trainer, v, args, workdir, repeat))
                    print(f"  {trainer} {v}: {sum(runs[v][-1]['steps']):.1f} s in the loop", flush=True)
            rows = {v: sorted(r, key=lambda run: sum(run["steps"]))[len(r) // 2] for v, r in runs.items()}  # the median run
            report(trainer, rows, paired_speedups(runs), sum(t for t, _ in seqs), training_flops(seqs, shape), peak)


if __name__ == "__main__":
    main()
