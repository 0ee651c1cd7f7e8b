"""What generates text here: vLLM where it runs, else transformers. Shared by the FastChat
launcher and workers (``fastchat/``) and the in-process rollouts of PPO
(``eval_agent/agents/local_agent.py``), which run as plain scripts outside the repo's ``fastchat``
package."""

from __future__ import annotations

import subprocess
import sys

ENGINES = ("vllm", "hf")
# vLLM on CPU otherwise reserves 92% of the machine's memory for its KV cache (and refuses to
# start when anything else holds memory); a few GiB hold hundreds of episodes.
CPU_KV_CACHE_BYTES = 2 * 2**30


def has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def vllm_runs() -> bool:
    """Whether vLLM is installed and finds a device it supports here (CUDA, or a CPU build on a
    CPU). Checked in a child process: importing vLLM takes seconds and sets up state."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return False
    probe = "import sys, vllm.platforms as p; sys.exit(0 if p.current_platform.device_type in ('cuda', 'cpu') else 1)"
    try:
        return subprocess.run([sys.executable, "-c", probe], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=120).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def resolve_engine(engine: str) -> str:
    """``auto`` -> ``vllm`` where it runs, else ``hf``; an explicit engine is kept as given."""
    if engine == "auto":
        return "vllm" if vllm_runs() else "hf"
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r} (choose from auto, {', '.join(ENGINES)})")
    return engine


def default_dtype(on_gpu: bool) -> str:
    """vLLM's dtype. float32 on CPU: greedy replies then equal the HF worker's (which serves
    float32 on CPU) on 100 of 100 episode prompts measured, against 94 in bfloat16, which was 1.6x
    faster (docs/serving.md, "Engines"); a policy is then evaluated exactly as the HF path would. vLLM's
    choice on GPUs."""
    return "auto" if on_gpu else "float32"



# tcmalloc keeps freed memory for reuse instead of returning every large tensor to the kernel and
# faulting it in again at the next step, as glibc's malloc does: SFT on 2,000-token conversations
# trained 1.21x faster with it, to the same loss (benchmarks/cpu_allocator.py, docs/training.md "Training on
# CPU"); jemalloc with its default settings was slower (0.82x). Debian: libtcmalloc-minimal4.
CPU_ALLOCATORS = (
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
)


def cpu_allocator() -> str:
    """The allocator to preload for CPU training, or "" where none is installed."""
    import os

    return next((path for path in CPU_ALLOCATORS if os.path.exists(path)), "")
