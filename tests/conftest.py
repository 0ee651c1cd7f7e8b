"""Shared fixtures: the bundled model, a tiny model, and live FastChat servers on 127.0.0.1."""

import errno
import glob
import os
import signal
import subprocess
import time

import psutil
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


# ------------------------------------------------------------------------------ run_eto.sh, killed
def processes_mentioning(text, pids=False):
    found = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(cmdline, "rb") as f:
                args = f.read().decode(errors="replace").replace("\0", " ")
        except OSError:
            continue
        if text in args:
            found.append((int(cmdline.split("/")[2]), args) if pids else args)
    return found


def assert_nothing_left(root):
    """Every process started under ``root`` (stages, trainers, servers, episodes) is gone soon."""
    deadline = time.time() + 30
    while processes_mentioning(str(root)) and time.time() < deadline:
        time.sleep(0.2)
    assert processes_mentioning(str(root)) == []


def stage_command(driver, name, text=None):
    """The running command of stage ``name`` in the run of ``driver`` (the process its stage engine
    started; not the model servers), once there is one; in a method's plan, which runs its stages in
    one engine process, the engine's command whose command line holds ``text``. Only the driver's own
    processes count: another test's run may be in the same stage. Once the engine runs, its children
    are watched closely: a toy stage's command may live only a few hundred milliseconds."""
    engine_line = f"eto.pipeline stage {name} " if text is None else "eto.pipeline method "
    for engine in _descendants(driver):
        try:
            if engine_line not in " ".join(engine.cmdline()):
                continue
            while engine.is_running():
                for child in engine.children():
                    try:  # a child may end between the listing and its command line: look at the next
                        line = " ".join(child.cmdline())
                    except psutil.NoSuchProcess:
                        continue
                    if "fastchat.launch" not in line and (text is None or text in line):
                        return child
                time.sleep(0.001)
        except psutil.NoSuchProcess:
            continue
    return None


def _descendants(pid):
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def kill_in_stage(command, name, root, after=None, while_frozen=None, text=None, sig=signal.SIGKILL):
    """Start ``command``; once stage ``name``'s command runs (and, with ``after``, a file matches that
    pattern), freeze it (SIGSTOP: it cannot finish in between), SIGKILL the driver, and let it go on
    (SIGCONT): its parent-death signal then ends it; every process of the run must be gone. ``name`` "finish": the run's last step itself;
    ``text``: the command of a method's plan that holds it. ``sig`` SIGTERM (as Ctrl-C's SIGINT): the
    driver's trap stops the stage, whose SIGTERM waits for the frozen command until it goes on."""
    run = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    deadline = time.time() + 300
    while (child := last_step(run.pid) if name == "finish" else stage_command(run.pid, name, text)) is None or \
            (after and not glob.glob(after)):
        assert run.poll() is None, run.stdout.read()
        assert time.time() < deadline, f"stage {name} did not start"
        time.sleep(0.01)
    child.suspend()
    if while_frozen:
        while_frozen()
    started = family(run.pid, root)
    run.send_signal(sig)
    if sig == signal.SIGKILL:
        run.wait(timeout=60)
    else:  # the stop reaches the frozen command first: it cannot finish once it goes on
        deadline = time.time() + 30
        while not signal_pending(child.pid, signal.SIGTERM):
            assert time.time() < deadline, "the driver did not stop the stage"
            time.sleep(0.01)
    try:
        child.resume()
    except psutil.NoSuchProcess:
        pass
    out = run.communicate(timeout=120)[0]
    if sig == signal.SIGTERM:
        assert run.returncode == 143 and "rerun the same command to resume" in out, out[-3000:]
    assert psutil.wait_procs(started, timeout=30)[1] == []
    assert_nothing_left(root)


def family(pid, root):
    """The processes ``pid`` started, and the servers of a run under ``root`` with theirs (the model
    servers run detached; vLLM's engine processes and ScienceWorld's JVMs name no path of the run)."""
    heads = [pid] + [p for p, _ in processes_mentioning(str(root), pids=True)]
    found = []
    for head in heads:
        try:
            process = psutil.Process(head)
            found += [process] * (head != pid) + process.children(recursive=True)
        except psutil.NoSuchProcess:
            continue
    return list(set(found))


def signal_pending(pid, sig):
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return True  # gone: nothing left to stop
    return any(int(fields.get(mask, "0"), 16) >> (sig - 1) & 1 for mask in ("ShdPnd", "SigPnd"))


def last_step(driver):
    for process in _descendants(driver):
        try:
            if "eto.pipeline finish" in " ".join(process.cmdline()):
                return process
        except psutil.NoSuchProcess:
            continue
    return None
