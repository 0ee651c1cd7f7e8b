"""Faults a long run meets, with real processes on 127.0.0.1: a model worker killed in the middle
of an exploration (restarted by the launcher, as ``run_eto.sh`` serves), and every server gone for
good (the run stops, saves the failed episodes as errors, and a rerun replays them).

The policy is the tiny randomly initialised model of ``conftest.py`` (real architecture and
tokenizer) on ScienceWorld with 3-step episodes: what is tested is the plumbing, not the replies.
"""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import fill_up
from eval_agent.config import load_config
from eval_agent.report import markdown as report_markdown
from eto.pipeline.markers import record_remade

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = 4


class Launcher:
    """``python -m fastchat.launch`` as run_eto.sh starts it: a controller and workers that it
    restarts when they die."""

    def __init__(self, model_path, folder, workers, env=None):
        self.ready_file = folder / "ready.json"
        self.output = open(folder / "launch.out", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastchat.launch", "--model-path", model_path, "--engine", "hf", "--num-workers",
             str(workers), "--controller-port", "0", "--torch-threads", "1", "--ready-file", str(self.ready_file),
             "--log-dir", str(folder / "logs")], cwd=REPO_ROOT, stdout=self.output, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})})
        deadline = time.time() + 300
        while not self.ready_file.exists():
            assert self.proc.poll() is None and time.time() < deadline, (folder / "launch.out").read_text()
            time.sleep(0.2)
        self.info = json.loads(self.ready_file.read_text())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        self.output.close()


@pytest.fixture
def launch(tiny_model_path, tmp_path):
    started = []

    def start(workers=1, env=None):
        folder = tmp_path / f"launch{len(started)}"
        folder.mkdir()
        started.append(Launcher(tiny_model_path, folder, workers, env))
        return started[-1]

    yield start
    for launcher in started:
        launcher.stop()


def _explore(launcher, short_task_config, out, *extra):
    command = [sys.executable, "-m", "eval_agent.main", "--model_name", launcher.info["model_name"], "--exp_config",
               short_task_config, "--split", "train", "--max_tasks", str(TASKS), "--concurrency", "2", "--output_dir",
               str(out), "--controller_address", launcher.info["controller_url"],
               "--max_new_tokens", "64", *extra]  # the tiny model's replies would run to 512 tokens: 25 s a step
    return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _episodes(out):
    return [json.load(open(p)) for p in sorted(glob.glob(str(out / "*" / "*" / "[!_]*.json")))]


def _wait_for_episodes(run, out, n):
    deadline = time.time() + 300
    while len(_episodes(out)) < n:
        assert run.poll() is None and time.time() < deadline, run.communicate()
        time.sleep(0.1)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("server, workers", [("worker0", 1), ("worker0", 2), ("controller", 1)])
def test_a_server_killed_mid_run_is_restarted_and_no_episode_is_lost_or_duplicated(launch, short_task_config, tmp_path,
                                                                                    server, workers):
    """A worker killed mid-run (the OOM killer), alone or beside another, or the controller: the
    launcher starts it again on the same address and the episodes in flight ride out the gap with
    their retries. A restarted controller knows no worker until the worker's next heartbeat (45 s
    in FastChat; 3 s here, so that the test is short; the retries span about a minute)."""
    launcher = launch(workers, {"FASTCHAT_WORKER_HEART_BEAT_INTERVAL": "3"})
    out = tmp_path / "out"
    run = _explore(launcher, short_task_config, out)
    _wait_for_episodes(run, out, 1)
    os.kill(launcher.info["server_pids"][server], signal.SIGKILL)  # as the kernel's OOM killer would
    stdout, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr[-3000:]
    episodes = _episodes(out)
    assert len(episodes) == TASKS and len({e["meta"]["id"] for e in episodes}) == TASKS
    assert not any(e["meta"]["error"] for e in episodes)
    assert f"{TASKS} episodes finished ({TASKS} this run, 0 with errors" in stdout
    # Beside a second worker, the run may end before the launcher has seen the first one die.
    restarted, deadline = f"restarted {server} (exit code -9; restart 1 of 3)", time.time() + 60
    while restarted not in (tmp_path / "launch0" / "launch.out").read_text() and time.time() < deadline:
        time.sleep(0.2)
    assert restarted in (tmp_path / "launch0" / "launch.out").read_text()


def test_servers_gone_for_good_stop_the_run_and_a_rerun_replays_the_failed_episodes(launch, short_task_config, tmp_path):
    launcher = launch()
    out = tmp_path / "out"
    agent = tmp_path / "agent.json"
    agent.write_text(json.dumps({**load_config("model", "fastchat"), "max_retries": 1, "retry_backoff": 0.05}))
    run = _explore(launcher, short_task_config, out, "--agent_config", str(agent), "--max_consecutive_errors", "2")
    _wait_for_episodes(run, out, 1)
    launcher.proc.kill()  # the launcher's servers die with it, however it dies
    _, stderr = run.communicate(timeout=600)
    assert run.returncode == 1
    # Stopped after 2 failures in a row, or, if fewer episodes were left, at the end with the count.
    assert re.match(r"error: (run aborted: [23] episodes in a row failed; last error:|\d+ episodes ended in an agent error)",
                    stderr.strip().splitlines()[-1])
    deadline = time.time() + 30  # a server's own shutdown on its SIGTERM takes seconds under load
    while any(_alive(pid) for pid in launcher.info["server_pids"].values()) and time.time() < deadline:
        time.sleep(0.5)
    assert not any(_alive(pid) for pid in launcher.info["server_pids"].values())
    failed = [e for e in _episodes(out) if e["meta"]["error"]]
    assert failed and all(e["meta"]["reward"] == 0 and not e["meta"]["success"] for e in failed)
    finished = len(_episodes(out)) - len(failed)

    launcher = launch()  # a new controller, on a new port
    rerun = _explore(launcher, short_task_config, out, "--agent_config", str(agent))
    stdout, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stderr[-3000:]
    episodes = _episodes(out)
    assert len(episodes) == TASKS and not any(e["meta"]["error"] for e in episodes)
    assert f"{TASKS} episodes finished ({TASKS - finished} this run, 0 with errors" in stdout  # the failed replayed


def test_a_scienceworld_jvm_killed_mid_episode_is_replayed_in_a_fresh_one(tmp_path):
    """The environment's expert plays (no model), so a replayed episode must reach its full reward."""
    import psutil

    out = tmp_path / "out"
    run = subprocess.Popen([sys.executable, "-u", "-m", "eval_agent.main", "--agent_config", "expert", "--model_name",
                            "expert", "--exp_config", "sciworld", "--split", "dev", "--max_tasks", "2", "--output_dir",
                            str(out), "--verbose"], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    turns, killed = 0, []
    for line in run.stdout:
        turns += "] assistant: " in line
        if turns == 3 and not killed:  # in the middle of the first episode
            killed = [p for p in psutil.Process(run.pid).children(recursive=True) if p.name() == "java"]
            for jvm in killed:
                jvm.kill()
        if "replaying the episode" in line:
            break
    rest, _ = run.communicate(timeout=600)
    assert killed and run.returncode == 0, rest[-3000:]
    assert "ScienceWorld engine (JVM) died" in line
    episodes = _episodes(out)
    assert len(episodes) == 2 and all(e["meta"]["error"] is None and e["meta"]["success"] for e in episodes)


def _fill_the_disk_after_one_saved_episode(out, fill_up_disk=None, preexec_fn=None, message=""):
    """An expert run saves one episode; then the disk fills (``fill_up_disk``) or looks full
    (``preexec_fn``) and a run of two tasks must stop with one line, the saved episode whole."""
    command = [sys.executable, "-m", "eval_agent.main", "--agent_config", "expert", "--model_name", "expert",
               "--exp_config", "sciworld", "--split", "dev", "--output_dir", str(out)]
    first = subprocess.run(command + ["--max_tasks", "1"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    [saved] = glob.glob(str(out / "expert" / "sciworld" / "[!_]*.json"))
    before = open(saved).read()
    if fill_up_disk:
        fill_up_disk()
    full = subprocess.run(command + ["--max_tasks", "2"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          preexec_fn=preexec_fn)
    assert full.returncode == 1 and "Traceback" not in full.stderr
    assert full.stderr.strip().splitlines()[-1].startswith("error: run aborted: cannot save episode")
    assert message in full.stderr
    assert open(saved).read() == before
    assert sorted(os.listdir(out / "expert" / "sciworld")) == sorted(["_summary.json", os.path.basename(saved)])


def test_a_model_made_again_with_other_weights_moves_aside_what_finished_after_it(tmp_path, monkeypatch):
    """A run continued on another processor trains a missing model again and gets other weights
    (CPU training is not bit-identical across processors): every stage that finished after that
    training may have used the first model, so its marker, episodes, pairs and checkpoint go to an
    archive, to be made again; what uses no model (expert data, the expert's evaluation) stays."""
    def put(path, text="{}"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)

    markers = [("expert_data", {"data": "pm/sft.json"}), ("sft", {"model": "ckpt/sft", "weights": "aaaa"}),
               ("eval_sft_test", {"row": "SFT", "split": "test", "episodes": "out/sft/x_test"}),
               ("eval_expert_test", {"row": "expert", "method": "expert", "split": "test", "episodes": "out/expert/x_test"}),
               ("round1_explore", {"row": "round_1"}), ("round1_pairs", {"row": "round_1", "pairs": "pm/p1.json"}),
               ("round1_dpo", {"model": "ckpt/dpo1", "weights": "cccc"}),
               ("round1_eval_test", {"row": "round_1", "split": "test", "episodes": "out/dpo1/x_test"})]
    for i, (stage, fields) in enumerate(markers):
        put(f"stages/{stage}.json", json.dumps({"stage": stage, "finished_at": i, "seconds": 1, **fields}))
    for path in ("pm/sft.json", "pm/p1.json", "out/sft/x_test/0_1.json", "out/sft/x_train/0_1.json",
                 "out/expert/x_test/0_1.json", "out/dpo1/x_test/0_1.json", "ckpt/dpo1/model.safetensors"):
        put(path)

    def remade(weights):
        return record_remade("stages", "sft", 5, weights, "out", "superseded")

    monkeypatch.chdir(tmp_path)  # the markers' paths are relative, as a committed run's
    line, superseded = remade("bbbb")
    assert superseded  # the run starts again from the top
    assert "other weights (bbbb)" in line and "the 5 stage(s)" in line
    assert sorted(os.listdir(tmp_path / "stages")) == ["eval_expert_test.json", "expert_data.json", "sft.json"]
    sft = json.loads((tmp_path / "stages" / "sft.json").read_text())
    assert sft["weights"] == "bbbb" and sft["remade"][-1]["replaced"] == "aaaa" and not sft["remade"][-1]["same_weights"]
    archive = tmp_path / "superseded" / "sft-aaaa"
    assert sorted(os.listdir(archive / "stages")) == sorted(f"{s}.json" for s, _ in markers[2:] if s != "eval_expert_test")
    assert {str(p.relative_to(archive)) for p in archive.rglob("*.json") if "stages" not in p.parts} == {
        "episodes/sft/x_test/0_1.json", "episodes/sft/x_train/0_1.json", "episodes/dpo1/x_test/0_1.json",
        "pairs/p1.json", "superseded.json"}
    assert (tmp_path / "out/expert/x_test/0_1.json").exists() and (tmp_path / "pm/sft.json").exists()
    assert not (tmp_path / "ckpt/dpo1").exists() and (tmp_path / "ckpt/dpo1.superseded-sft-aaaa/model.safetensors").exists()
    assert "OTHER weights than the first run (aaaa)" in report_markdown({}, [sft], "t")

    line, superseded = remade("bbbb")  # the same weights as now recorded: nothing moves
    assert not superseded and "the same weights" in line
    assert sorted(os.listdir(tmp_path / "superseded")) == ["sft-aaaa"]


def test_weights_sketch_tells_rounding_noise_from_other_training(tmp_path):
    """A model trained again whose bits differ by rounding (another CPU's kernels) is the same
    model; one whose training differs (10% more learning rate) is not. Real safetensors files;
    every distance is estimated from the sketches alone, as a fraction of the training's update."""
    import torch
    from safetensors.torch import save_file
    from eto.weights import SAME_MODEL_DISTANCE, difference, sketch

    generator = torch.Generator().manual_seed(0)
    start = {"embed": torch.randn(300, 64, generator=generator), "layer.weight": torch.randn(64, 64, generator=generator),
             "steps": torch.arange(3)}  # an integer tensor: not a weight
    update = {k: 1e-3 * torch.randn(v.shape, generator=generator) for k, v in start.items() if v.is_floating_point()}
    first = {**start, **{k: start[k] + u for k, u in update.items()}}
    models = {"start": start, "first": first,
              "rounding": {**first, **{k: first[k] * (1 + 1e-7 * torch.randn(u.shape, generator=generator))
                                       for k, u in update.items()}},
              "more_lr": {**start, **{k: start[k] + 1.1 * u for k, u in update.items()}}}
    for name, tensors in models.items():
        (tmp_path / name).mkdir()
        save_file(tensors, str(tmp_path / name / "model.safetensors"))
    sketches = {name: sketch(str(tmp_path / name)) for name in models}
    assert sketch(str(tmp_path / "first")) == sketches["first"]  # seeded: the same on every run

    def exact(a, b):
        return sum(float((models[a][k] - models[b][k]).square().sum()) for k in update) ** 0.5

    for a, b in (("first", "start"), ("first", "rounding"), ("first", "more_lr")):
        assert exact(a, b) / 2 < difference(sketches[a], sketches[b]) < exact(a, b) * 2
    moved = difference(sketches["first"], sketches["start"])
    assert difference(sketches["first"], sketches["rounding"]) / moved < SAME_MODEL_DISTANCE
    assert difference(sketches["first"], sketches["more_lr"]) / moved > SAME_MODEL_DISTANCE

    facts = subprocess.run([sys.executable, "-m", "eto.weights", "facts", str(tmp_path / "first"), "--start",
                            str(tmp_path / "start")], capture_output=True, text=True, cwd=REPO_ROOT)
    assert facts.returncode == 0 and float(facts.stdout.split("update_norm=")[1]) == pytest.approx(moved, rel=1e-5)
    bad = subprocess.run([sys.executable, "-m", "eto.weights", "difference", "1,2", "x"], capture_output=True, text=True,
                         cwd=REPO_ROOT)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: ")


def test_a_stage_made_again_with_other_bits_but_the_same_model_keeps_what_finished_after_it(tmp_path):
    from eto.weights import BUCKETS

    first = [10.0] + [1.0] * BUCKETS
    sketch = lambda shift: ",".join(repr(v + (shift if i else 0)) for i, v in enumerate(first))  # noqa: E731
    (tmp_path / "stages").mkdir()
    sft = {"model": "ckpt/sft", "weights": "aaaa", "weights_sketch": sketch(0), "update_norm": "0.001"}
    for i, (stage, fields) in enumerate([("sft", sft),
                                         ("eval_sft_test", {"row": "SFT", "split": "test", "episodes": "out/sft/x"})]):
        (tmp_path / "stages" / f"{stage}.json").write_text(json.dumps({"stage": stage, "finished_at": i, "seconds": 1, **fields}))

    def remade(weights, shift):
        return record_remade(str(tmp_path / "stages"), "sft", 5, weights, str(tmp_path / "out"),
                             str(tmp_path / "superseded"), sketch(shift))

    line, superseded = remade("bbbb", 1e-7)  # 8e-7 apart: 8e-4 of the update
    assert not superseded and "the same model" in line
    assert sorted(os.listdir(tmp_path / "stages")) == ["eval_sft_test.json", "sft.json"]
    sft = json.loads((tmp_path / "stages" / "sft.json").read_text())
    assert sft["weights"] == "aaaa" and sft["remade"][-1]["distance"] == pytest.approx(8e-4) and not sft["remade"][-1]["same_weights"]
    assert "other bits, the same model" in report_markdown({}, [sft], "t")

    line, superseded = remade("cccc", 1e-4)  # 8e-4 apart: 0.8 of the update, another model
    assert superseded and "0.8 of its training's update apart" in line
    assert sorted(os.listdir(tmp_path / "stages")) == ["sft.json"]
    assert json.loads((tmp_path / "stages" / "sft.json").read_text())["weights_sketch"] == sketch(1e-4)


def test_a_full_disk_stops_the_run_with_one_line_and_keeps_saved_episodes_whole(tmp_path):
    """No file may grow past 4 KB (RLIMIT_FSIZE), as if the disk filled up: a write fails with
    EFBIG where a full disk gives ENOSPC, through the same code."""
    import resource

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    _fill_the_disk_after_one_saved_episode(tmp_path / "out", preexec_fn=small_files, message="File too large")


def test_a_really_full_disk_stops_the_run_with_one_line_and_keeps_saved_episodes_whole(full_tmpfs):
    """The same on a file system that has no space left (ENOSPC): one episode is saved, the rest of
    the tmpfs is filled, and the next run's first write fails."""
    disk = full_tmpfs("1m")
    _fill_the_disk_after_one_saved_episode(disk / "out", fill_up_disk=lambda: fill_up(disk),
                                           message="No space left on device")


@pytest.mark.parametrize("env, tasks", [("sciworld", 3), ("alfworld", 3), ("webshop", 10)])
def test_every_environment_answers_whatever_an_agent_writes(tmp_path, env, tasks):
    """Empty, 100 KB, binary, Unicode, bare 'Action:', nested brackets, shell metacharacters and
    random actions (eval_agent/agents/adversarial_agent.py) through the harness: every reply gets an
    observation, no episode crashes. (scripts/fuzz_envs.py runs 10,000 steps per environment.)"""
    result = subprocess.run([sys.executable, "-m", "eval_agent.main", "--agent_config", "adversarial", "--model_name",
                             "adversarial", "--exp_config", env, "--split", "train", "--max_tasks", str(tasks),
                             "--output_dir", str(tmp_path)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    episodes = _episodes(tmp_path)
    assert len(episodes) == tasks
    replies = []
    for episode in episodes:
        meta, turns = episode["meta"], episode["conversations"][episode["meta"]["task_turn"] + 1:]
        assert meta["error"] is None and meta["finished"]
        assert len(turns) == 2 * meta["steps"] and meta["steps"] > 0
        assert [t["from"] for t in turns] == ["gpt", "human"] * meta["steps"]
        assert all(t["value"].startswith("Observation:") and len(t["value"]) > len("Observation:") for t in turns[1::2])
        replies += [t["value"] for t in turns[0::2]]
    assert "" in replies and max(map(len, replies)) >= 100_000 and any("\x00" in r or "\x7f" in r for r in replies)
    assert any("$(rm -rf /)" in r for r in replies) and any(r.startswith("Action:") and not r[7:].strip() for r in replies)
