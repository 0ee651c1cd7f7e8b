"""Shared fixtures: the bundled model, a tiny model, and live FastChat servers on 127.0.0.1."""

import errno
import os
import subprocess

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_MODEL = os.path.join(REPO_ROOT, "models", "SmolLM2-135M-Instruct")

# Tests run model processes side by side on 2 cores: one thread each avoids thrashing.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def replay_example(env, task, example):
    """Play an in-context example's replies in ``env``; every observation must match the example's.
    Returns the final episode state."""
    assert env.reset(task) == example[0]["content"]
    for i, message in enumerate(example[1:], start=1):
        if message["role"] == "assistant":
            observation, state = env.step(message["content"])
            if i + 1 < len(example):
                assert example[i + 1]["content"] == observation
    return state


@pytest.fixture(scope="session")
def bundled_model_path() -> str:
    if not os.path.isfile(os.path.join(BUNDLED_MODEL, "config.json")):
        pytest.fail(f"{BUNDLED_MODEL} is missing: run `bash setup.sh` first")
    return BUNDLED_MODEL


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, bundled_model_path) -> str:
    """A tiny, randomly initialised Llama with the real SmolLM2 tokenizer and chat template.

    Same architecture family and tokenizer as the bundled model, so serving and prompt
    formatting are exercised for real; its outputs are meaningless text, which is all the
    serving tests need, and it loads and generates in a fraction of a second.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path)
    config = LlamaConfig(
        # head_dim 64: the smallest vLLM's CPU attention kernels take (16 is refused).
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
        initializer_range=0.2,  # larger than usual: greedy replies vary instead of repeating one token
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    path = str(tmp_path_factory.mktemp("models") / "tiny-smollm2")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_servers(tiny_model_path, tmp_path_factory):
    """Controller + one worker (tiny model) + OpenAI API server, real processes on loopback."""
    from fastchat.launch import FastChatServers

    log_dir = str(tmp_path_factory.mktemp("fastchat-logs"))
    with FastChatServers(tiny_model_path, api_server=True, device="cpu", torch_threads=1, log_dir=log_dir) as servers:
        yield servers


def vllm_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


needs_vllm = pytest.mark.skipif(not vllm_installed(), reason="vLLM is not installed (bash setup.sh installs it; --no-vllm skips it)")


@pytest.fixture(scope="session")
def tiny_vllm_servers(tiny_model_path, tmp_path_factory):
    """Controller + one vLLM worker (tiny model, float32 like the HF worker) + OpenAI API server."""
    if not vllm_installed():
        pytest.skip("vLLM is not installed (bash setup.sh installs it; --no-vllm skips it)")
    from fastchat.launch import FastChatServers

    log_dir = str(tmp_path_factory.mktemp("fastchat-vllm-logs"))
    with FastChatServers(tiny_model_path, api_server=True, device="cpu", log_dir=log_dir, engine="vllm",
                         worker_args=["--dtype", "float32"]) as servers:
        yield servers


@pytest.fixture
def short_task_config(tmp_path):
    """The sciworld task config with every step limit cut to 3, to keep episodes short."""
    import json

    from eval_agent.config import load_config

    config = load_config("task", "sciworld")
    config["max_steps"] = {name: 3 for name in config["max_steps"]}
    path = tmp_path / "sciworld.json"
    path.write_text(json.dumps(config))
    return str(path)


@pytest.fixture
def full_tmpfs(tmp_path):
    """full_tmpfs(size) -> a folder on a real file system of that size that can fill up (a tmpfs;
    mounting needs root: skipped elsewhere). Unmounted after the test."""
    mounted = []

    def mount(size):
        disk = tmp_path / f"disk{len(mounted)}"
        disk.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(disk)
        return disk

    yield mount
    for disk in mounted:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill_up(disk):
    """Take every block left on ``disk`` (file ``filler``), so that the next write fails with ENOSPC."""
    with open(os.path.join(disk, "filler"), "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 4096)
        except OSError as error:
            assert error.errno == errno.ENOSPC



# The files that take longest, first: pytest-xdist hands whole files to its two processes in
# collection order, so a long file started last would end the suite alone.
LONGEST_FIRST = ["test_eto_loop.py", "test_eto_real.py", "test_faults.py", "test_eval_cli.py", "test_ppo.py",
                 "test_sft.py", "test_dpo.py", "test_step_level.py"]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
