"""run_eto.sh end to end: expert data -> SFT -> eval -> explore -> pairs -> DPO -> eval -> report.

Runs the real driver, real FastChat servers (the default engine: vLLM where installed) and real
ScienceWorld on 3 train and 2 test tasks,
starting from the tiny randomly initialised Llama of conftest (real tokenizer and chat template),
so every stage runs for real in a few minutes; its rewards mean nothing. The first run is killed
during exploration; the rerun must resume there without redoing or losing anything. Each other
method (Best-of-N, RFT, the mixture of trajectory- and step-level pairs, PPO) is killed and
resumed the same way in the same experiment; self-play, which the tiny model gives nothing to
learn from, must keep the untuned model. Last, headless Chromium loads the run's view.html.
"""

import glob
import html as html_module
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time

import psutil
import pytest
import requests
import torch

from eval_agent.envs import SciWorldEnv

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _processes_mentioning(text, pids=False):
    found = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(cmdline, "rb") as f:
                args = f.read().decode(errors="replace")
        except OSError:
            continue
        if text in args:
            args = args.replace("\0", " ")
            found.append((int(cmdline.split("/")[2]), args) if pids else args)
    return found


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_path):
    root = tmp_path_factory.mktemp("eto")
    # The tiny model's replies never parse, so its episodes run to the step limit: 4 steps keep
    # every stage real and the module within minutes (the expert is not cut by it).
    step_limits = dict.fromkeys(["find-non-living-thing", "lifespan-longest-lived",
                                 "lifespan-longest-lived-then-shortest-lived", "lifespan-shortest-lived"], 4)
    (root / "sciworld_tiny.json").write_text(json.dumps({"extends": "sciworld_demo", "max_tasks": {"train": 3, "test": 2},
                                                         "max_steps": step_limits}))
    (root / "preset.sh").write_text(f"""
source presets/demo.sh
EXP_CONFIG={root}/sciworld_tiny.json
SFT_DATA={root}/sft.json
OUTPUT_DIR={root}/outputs PAIRS_DIR={root}/pm LOG_ROOT={root}/logs
SFT_ARGS=(--num_train_epochs 1 --learning_rate 1e-3 --model_max_length 2048 --save_strategy no)
DPO_ARGS=(--num_train_epochs 1 --model_max_length 2048 --save_strategy no)
BON_SAMPLES=2 RFT_SAMPLES=2 SELFPLAY_SAMPLES=2
PPO_GENERATIONS=2 PPO_TASKS_PER_STEP=1 PPO_MICRO_BATCH=2
PPO_ARGS=(--num_train_epochs 1 --model_max_length 2048 --save_steps 1 --save_total_limit 1)
CPU_TRAIN_PORTABLE=2  # so that the trainers' numerics are those of any x86 machine (run_eto.sh)
""")
    return root


def _command(root, tiny_model_path, method="eto"):
    # ETO runs on the default engine (vLLM where installed); the other methods reuse the same
    # stage functions, so they serve with FastChat's transformers worker, which starts in seconds
    # where vLLM takes half a minute (test_vllm_worker.py covers vLLM serving itself).
    engine = [] if method == "eto" else ["--engine", "hf"]
    return ["bash", "run_eto.sh", "--preset", str(root / "preset.sh"), "--method", method, *engine, "sciworld", "t",
            tiny_model_path, str(root / "ckpt")]


def _start_and_kill_when_saved(command, pattern, sig=signal.SIGTERM, root=None):
    """Run ``command`` until an episode file matches ``pattern``, then send it ``sig``: SIGTERM as
    a user's Ctrl-C; SIGKILL as a crash of the driver alone, after which nothing it started under
    ``root`` may live on."""
    run = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    deadline = time.time() + 900
    while not glob.glob(pattern):
        assert run.poll() is None, run.stdout.read()
        assert time.time() < deadline, f"nothing matched {pattern}"
        time.sleep(0.2)
    run.send_signal(sig)
    out, _ = run.communicate(timeout=120)
    if sig == signal.SIGTERM:
        assert run.returncode != 0 and "rerun the same command to resume" in out
    else:
        _assert_nothing_left(root)
    return {p: os.path.getmtime(p) for p in glob.glob(pattern)}


def _assert_nothing_left(root):
    """Every process started under ``root`` (trainer, servers, episodes, JVMs) is gone soon."""
    deadline = time.time() + 30
    while _processes_mentioning(str(root)) and time.time() < deadline:
        time.sleep(0.5)
    assert _processes_mentioning(str(root)) == []


def test_bad_arguments_fail_with_one_line():
    for args, message in ((["nosuchtask"], "unknown task 'nosuchtask'"),
                          (["sciworld", "x", "/no/such/model"], "model folder '/no/such/model' not found"),
                          (["--preset", "nope", "sciworld"], "unknown preset 'nope'"),
                          (["--rounds", "two", "sciworld"], "--rounds must be"),
                          (["--engine", "tgi", "sciworld"], "--engine must be auto, vllm or hf")):
        result = subprocess.run(["bash", "run_eto.sh", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode != 0 and message in result.stderr, (args, result.stderr)


def test_loop_runs_end_to_end_and_resumes_after_a_kill_during_exploration(run_dir, tiny_model_path):
    root = run_dir
    sft_name = os.path.basename(tiny_model_path) + "-sciworld_tiny-sft"
    sft_name = f"t-{sft_name}"
    explore_dir = root / "outputs" / sft_name / "sciworld_tiny_train"
    stages = root / "logs" / "t" / "stages"

    # The driver killed with SIGKILL while it makes the expert data: the expert's process dies with
    # it, and the episodes it saved are kept for the rerun.
    expert_dir = os.path.join(REPO_ROOT, "outputs", "expert", "sciworld_tiny", "train")
    shutil.rmtree(expert_dir, ignore_errors=True)  # this test's own config: left by an earlier run
    crash = subprocess.Popen(_command(root, tiny_model_path), cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not glob.glob(os.path.join(expert_dir, "[!_]*.json")):  # the first of 3 expert episodes
        assert crash.poll() is None and time.time() < deadline, "the expert data stage did not start"
        time.sleep(0.05)
    crash.kill()
    crash.wait()
    _assert_nothing_left(root)
    assert not (stages / "expert_data.json").exists()
    kept = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(expert_dir, "[!_]*.json"))}

    # The driver killed with SIGKILL during SFT (a crash, an OOM kill): the trainer it started dies
    # with it. While it ran, a second run of the same experiment refused to start.
    crash = subprocess.Popen(_command(root, tiny_model_path), cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while not any("fastchat/train/train.py" in p for p in _processes_mentioning(str(root))):
        assert crash.poll() is None and time.time() < deadline, "SFT did not start"
        time.sleep(0.2)
    concurrent = subprocess.run(_command(root, tiny_model_path), cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert concurrent.returncode != 0 and concurrent.stderr.strip().count("\n") == 0
    assert "experiment 't' is already running" in concurrent.stderr
    crash.kill()
    crash.wait()
    _assert_nothing_left(root)
    assert (stages / "expert_data.json").exists()
    assert all(os.path.getmtime(p) == mtime for p, mtime in kept.items())  # resumed, not replayed

    first = subprocess.Popen(_command(root, tiny_model_path), cwd=REPO_ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 900
    while not glob.glob(str(explore_dir / "[!_]*.json")):
        assert first.poll() is None, first.stdout.read()
        assert time.time() < deadline, "exploration did not start"
        time.sleep(0.2)
    ready = json.loads((root / "logs" / "t" / "servers.ready").read_text())
    controller_url = ready["controller_url"]
    started = psutil.Process(first.pid).children(recursive=True)  # servers, vLLM's engine processes, envs
    first.send_signal(signal.SIGTERM)
    out, _ = first.communicate(timeout=120)
    assert first.returncode != 0 and "rerun the same command to resume" in out

    # The trap stopped everything it started: exploration, workers (with their engine processes), controller.
    time.sleep(1)
    assert _processes_mentioning(str(root)) == []
    assert [p.name() for p in psutil.wait_procs(started, timeout=30)[1]] == []
    with pytest.raises(requests.ConnectionError):
        requests.post(controller_url + "/list_models", timeout=5)
    assert (stages / "sft.json").exists() and not (stages / "round1_explore.json").exists()
    saved = {p: os.path.getmtime(p) for p in glob.glob(str(explore_dir / "[!_]*.json"))}

    second = subprocess.run(_command(root, tiny_model_path), cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    for stage in ("expert_data", "sft", "eval_sft_test"):
        assert f"[done] {stage}" in second.stdout
    for stage in ("round1_explore", "round1_pairs", "round1_dpo", "round1_eval_test"):
        assert f"[run ] {stage}" in second.stdout
    # Episodes explored before the kill were kept, not replayed; the rest were played.
    assert all(os.path.getmtime(p) == mtime for p, mtime in saved.items())
    assert len(glob.glob(str(explore_dir / "[!_]*.json"))) == 3

    pairs = json.loads((root / "pm" / "sciworld_tiny_pm_t_1.json").read_text())
    assert 1 <= len(pairs) <= 3  # the tiny model fails, so each explored task pairs with its expert
    dpo_model = root / "ckpt" / "t-tiny-smollm2-sciworld_tiny-dpo-iter-1"
    assert (dpo_model / "eto_training.json").exists()
    dpo_marker = json.loads((stages / "round1_dpo.json").read_text())
    assert dpo_marker["loss"] == "sigmoid" and dpo_marker["beta"] and dpo_marker["lr"]  # DPO_ARGS names no --loss_type
    report = (root / "logs" / "t" / "report.md").read_text()
    assert "| SFT |" in report and "| round 1 |" in report and (root / "logs" / "t" / "report.png").stat().st_size > 0
    assert f"| {len(pairs)} |" in report
    if torch.cuda.device_count() == 0:  # CPU_TRAIN_PORTABLE: both trainers ran on AVX2 kernels, 2 threads
        for log in ("sft.log", "round1_dpo.log"):
            assert "note: CPU numerics: ATen kernels AVX2, MKL_CBWR=AVX2,STRICT, ONEDNN_MAX_CPU_ISA=AVX2, 2 threads" \
                in (root / "logs" / "t" / log).read_text()
    assert len(glob.glob(str(root / "outputs" / dpo_model.name / "sciworld_tiny_test" / "[!_]*.json"))) == 2

    # A third run finds every stage done and only rebuilds the report.
    third = subprocess.run(_command(root, tiny_model_path), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0 and "[run ]" not in third.stdout and "| round 1 |" in third.stdout


def _report_results(root, exp="t"):
    """report.md without its title (it names the experiment) and its wall-time table."""
    text = (root / "logs" / exp / "report.md").read_text()
    return text.split("\n", 1)[1].split("| stage | wall time (s) |")[0]


def _signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _alive(pid):
    try:  # a zombie has ended its work
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False


def _kill_while_running(command, process_text, root, longest_wait=0.3):
    """Start ``command`` and kill it with SIGKILL a random moment after a process whose command
    line holds ``process_text`` (and ``root``) appears. That process is frozen (SIGSTOP) at the
    moment, so it cannot finish before the driver dies (the driver's watchdog kills it afterwards).
    Returns whether it was still running then: a stage shorter than the wait may have ended."""
    run = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    deadline = time.time() + 300
    while not (matched := [pid for pid, args in _processes_mentioning(str(root), pids=True) if process_text in args]):
        assert run.poll() is None, run.stdout.read()
        assert time.time() < deadline, f"no process ran {process_text}"
        time.sleep(0.01)
    time.sleep(random.uniform(0, longest_wait))
    _signal_all(matched, signal.SIGSTOP)  # one that ended during the wait: the kill lands after its stage
    caught = any(_alive(pid) for pid in matched)
    run.kill()
    run.wait(timeout=60)
    _signal_all(matched, signal.SIGCONT)  # the driver's watchdog sent SIGTERM, seen only once resumed
    run.communicate(timeout=60)
    _assert_nothing_left(root)
    return caught


def test_a_run_killed_in_its_short_stages_ends_with_the_same_report(run_dir, tiny_model_path):
    """The first test's run, killed in several stages, has the report of a run of the same
    settings that nobody interrupted. Then SIGKILL of the driver while the pairs are made, and
    again while the report is written: the rerun makes what was cut off and ends the same."""
    root, stages = run_dir, run_dir / "logs" / "t" / "stages"
    if not (stages / "round1_eval_test.json").exists():
        pytest.skip("needs the finished ETO run of the first test")
    finished, pairs = _report_results(root), root / "pm" / "sciworld_tiny_pm_t_1.json"
    uninterrupted = _command(root, tiny_model_path)
    uninterrupted[uninterrupted.index("sciworld") + 1] = "u"
    run = subprocess.run(uninterrupted, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert _report_results(root, "u") == finished
    weights = lambda exp: json.loads((root / "logs" / exp / "stages" / "sft.json").read_text())["weights"]  # noqa: E731
    assert weights("u") == weights("t")  # SFT killed and run again from the start trained the same model

    made = pairs.read_bytes()
    (stages / "round1_pairs.json").unlink()  # the pairs stage runs again; later stages stay done

    for attempt in range(6):  # the stage lasts about 0.2 s: shorter waits until the kill lands inside it
        if _kill_while_running(_command(root, tiny_model_path), "construct_preference.py", root, 0.3 / 2 ** attempt):
            break
        (stages / "round1_pairs.json").unlink(missing_ok=True)  # it ended first: the next try makes it again
    else:
        pytest.fail("construct_preference.py always ended before the kill")
    assert not (stages / "round1_pairs.json").exists()  # killed inside the stage: not marked done
    _kill_while_running(_command(root, tiny_model_path), "eval_agent.report build", root)

    rerun = subprocess.run(_command(root, tiny_model_path), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "[run ] round1_dpo" not in rerun.stdout and "[run ] round1_eval" not in rerun.stdout
    assert pairs.read_bytes() == made and (stages / "round1_pairs.json").exists()
    assert _report_results(root) == finished


def test_a_run_continued_without_its_checkpoints_trains_them_again_with_the_same_weights(run_dir, tiny_model_path):
    """A run continued on another machine has its markers, episodes and pairs (committed) but not
    its checkpoints: the stages that need a missing model train it again, and the weights must be
    the ones the first training recorded (same data, same seeds, same machine)."""
    root, stages = run_dir, run_dir / "logs" / "t" / "stages"
    if not (stages / "round1_eval_test.json").exists():
        pytest.skip("needs the finished ETO run of the first test")
    recorded = {stage: json.loads((stages / f"{stage}.json").read_text())["weights"] for stage in ("sft", "round1_dpo")}
    # Elsewhere: no checkpoints, and the round-1 evaluation still to do.
    shutil.move(str(root / "ckpt"), str(root / "ckpt_first_machine"))
    dpo_name = f"t-{os.path.basename(tiny_model_path)}-sciworld_tiny-dpo-iter-1"
    shutil.rmtree(root / "outputs" / dpo_name)
    (stages / "round1_eval_test.json").unlink()

    command = _command(root, tiny_model_path)
    command[command.index("--method"):command.index("--method")] = ["--engine", "hf"]  # seconds to serve
    rerun = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "[done] round1_explore" in rerun.stdout and "[run ] round1_eval_test" in rerun.stdout
    assert "[redo] round1_dpo" in rerun.stderr and "[redo] sft" in rerun.stderr  # the DPO model starts from SFT's
    assert "[redo] eval" not in rerun.stderr and "warning" not in rerun.stderr
    for stage, weights in recorded.items():
        marker = json.loads((stages / f"{stage}.json").read_text())
        assert [again["weights"] for again in marker["remade"]] == [weights] and marker["remade"][0]["same_weights"]
        assert f"{stage} was trained again" in (root / "logs" / "t" / "report.md").read_text()
    assert len(glob.glob(str(root / "outputs" / dpo_name / "sciworld_tiny_test" / "[!_]*.json"))) == 2


def test_a_run_continued_where_training_gives_other_weights_makes_again_what_used_the_first_model(
        run_dir, tiny_model_path):
    """The uninterrupted run "u" as a run continued on another processor, whose SFT recorded
    other weights than this machine's training gives: the rerun trains SFT, finds the weights
    differ, moves every later stage aside and starts again from the top, which plays, pairs and
    trains everything after SFT again from the new model: the same results here (same machine)."""
    root, stages = run_dir, run_dir / "logs" / "u" / "stages"
    if not (stages / "round1_eval_test.json").exists():
        pytest.skip("needs the uninterrupted run of the short-stages test")
    finished = _report_results(root, "u")
    episodes = lambda folder: {p.name: json.loads(p.read_text())["conversations"]  # noqa: E731
                               for p in folder.glob("[!_]*.json")}
    sft_name = f"u-{os.path.basename(tiny_model_path)}-sciworld_tiny-sft"
    first_episodes = episodes(root / "outputs" / sft_name / "sciworld_tiny_test")
    marker = json.loads((stages / "sft.json").read_text())
    real, marker["weights"] = marker["weights"], "0123456789abcdef"  # what the other processor's training made
    sketch = [float(v) for v in marker["weights_sketch"].split(",")]
    marker["weights_sketch"] = ",".join(repr(v * 1.01) for v in sketch)  # and not by rounding alone
    (stages / "sft.json").write_text(json.dumps(marker))
    for model in glob.glob(str(root / "ckpt" / "u-*")):  # checkpoints stay on the machine that trained them
        shutil.rmtree(model)
    (stages / "round1_eval_test.json").unlink()  # still to do: it needs the DPO model, which needs SFT's

    command = _command(root, tiny_model_path)
    command[command.index("sciworld") + 1] = "u"
    rerun = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "[redo] sft" in rerun.stderr and "other weights" in rerun.stderr and "[again] run_eto.sh" in rerun.stderr
    assert "[redo] round1_dpo" in rerun.stderr  # the first start: the evaluation needs its model
    assert "[run ] eval_sft_test" in rerun.stdout and "[run ] round1_dpo" in rerun.stdout  # after [again]
    assert "[done] eval_expert_test" in rerun.stdout  # no model in it: kept
    archive = root / "logs" / "u" / "superseded" / "sft-0123456789abcdef"
    assert {p.stem for p in (archive / "stages").glob("*.json")} == {
        "eval_sft_test", "round1_explore", "round1_pairs", "round1_dpo"}
    assert episodes(archive / "episodes" / sft_name / "sciworld_tiny_test") == first_episodes
    assert json.loads((stages / "sft.json").read_text())["weights"] == real
    assert json.loads((stages / "sft.json").read_text())["remade"][-1]["distance"] > 1e-3
    assert episodes(root / "outputs" / sft_name / "sciworld_tiny_test") == first_episodes  # made again, same here
    assert _report_results(root, "u") == finished
    assert "OTHER weights than the first run (0123456789abcdef, " in (root / "logs" / "u" / "report.md").read_text()


def _compare_rows(root):
    lines = (root / "logs" / "t" / "compare.md").read_text().split("## Reward per round")[0].splitlines()
    return [line.split(" | ")[0].strip("| ") for line in lines if line.startswith("| ") and "---" not in line][1:]


def test_best_of_n_reuses_the_sft_model_and_resumes_after_a_kill(run_dir, tiny_model_path):
    root, stages = run_dir, run_dir / "logs" / "t" / "stages"
    sft_marker = (stages / "sft.json").read_text() if (stages / "sft.json").exists() else None
    folder = root / "outputs" / f"t-{os.path.basename(tiny_model_path)}-sciworld_tiny-sft" / "sciworld_tiny_test_bon"
    saved = _start_and_kill_when_saved(_command(root, tiny_model_path, "bon"), str(folder / "sample_*" / "[!_]*.json"),
                                       signal.SIGKILL, root)

    rerun = subprocess.run(_command(root, tiny_model_path, "bon"), cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "[done] sft" in rerun.stdout and "[done] eval_sft_test" in rerun.stdout and "[run ] bon_eval_test" in rerun.stdout
    if sft_marker is not None:  # the ETO test ran first: its SFT model was not trained again
        assert (stages / "sft.json").read_text() == sft_marker
    assert all(os.path.getmtime(p) == mtime for p, mtime in saved.items())
    assert len(glob.glob(str(folder / "sample_*" / "[!_]*.json"))) == 2 * 2  # 2 test tasks x 2 samples
    rows = _compare_rows(root)
    assert "SFT" in rows and "Best-of-2" in rows and "Mean-of-2" in rows
    assert "Best-of-2" in rerun.stdout  # the comparison is printed at the end


def test_rft_trains_from_the_base_model_on_new_successes_keeps_the_policy_without_and_resumes(run_dir, tiny_model_path):
    """The tiny random model solves no task, so one episode it saved is marked a success here (as
    a real policy's would be): round 1 trains from the base model on the experts plus that episode.
    Round 2 finds no new success: training on the same data again would make round 1's model, so
    that model stays, with its evaluation."""
    root, stages = run_dir, run_dir / "logs" / "t" / "stages"
    command = _command(root, tiny_model_path, "rft") + ["--rounds", "2"]
    folder = root / "outputs" / f"t-{os.path.basename(tiny_model_path)}-sciworld_tiny-sft" / "sciworld_tiny_train_rft"
    saved = _start_and_kill_when_saved(command, str(folder / "sample_*" / "[!_]*.json"))
    assert not (stages / "rft_round1_explore.json").exists()
    marked = sorted(saved)[0]
    episode = json.loads(open(marked).read())
    episode["meta"]["success"] = True
    with open(marked, "w") as f:
        json.dump(episode, f)
    saved[marked] = os.path.getmtime(marked)

    rerun = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    for stage in ("rft_round1_explore", "rft_round1_data", "rft_round1_sft", "rft_round1_eval_test",
                  "rft_round2_explore", "rft_round2_data"):
        assert f"[run ] {stage}" in rerun.stdout
    assert all(os.path.getmtime(p) == mtime for p, mtime in saved.items())
    episodes = glob.glob(str(folder / "sample_*" / "[!_]*.json"))
    assert len(episodes) == 3 * 2  # 3 train tasks x 2 samples
    experts = json.loads((root / "sft.json").read_text())
    data = json.loads((root / "pm" / "sciworld_tiny_rft_t_1.json").read_text())
    assert data[:len(experts)] == experts and len(data) == len(experts) + 1
    replies = [turn["value"] for turn in episode["conversations"] if turn["from"] == "gpt"]
    assert data[-1]["conversations"][-1]["value"] == replies[-1]  # the marked episode, up to its last reply
    model = root / "ckpt" / f"t-{os.path.basename(tiny_model_path)}-sciworld_tiny-rft-iter-1"
    trained = json.loads((model / "eto_training.json").read_text())
    assert trained["base_model"] == tiny_model_path  # from the base model, not from the SFT policy

    assert json.loads((root / "pm" / "sciworld_tiny_rft_t_2.json").read_text()) == data
    assert json.loads((stages / "rft_round2_sft.json").read_text())["unchanged"] == "1"
    round2 = json.loads((stages / "rft_round2_eval_test.json").read_text())
    assert round2["unchanged"] == "1"
    assert round2["episodes"] == json.loads((stages / "rft_round1_eval_test.json").read_text())["episodes"]
    assert not (root / "ckpt" / f"t-{os.path.basename(tiny_model_path)}-sciworld_tiny-rft-iter-2").exists()
    assert "RFT (round 2) (nothing to train on: unchanged)" in _compare_rows(root)
    per_round = (root / "logs" / "t" / "compare.md").read_text().split("## Reward per round")[1]
    rft = next(line for line in per_round.splitlines() if line.startswith("| RFT |")).strip("| ").split(" | ")
    assert rft[3] != "" and rft[4] == rft[3]  # round 1 evaluated, round 2 its evaluation again


def test_mixture_adds_step_level_pairs_from_expert_prefixes_and_resumes(run_dir, tiny_model_path):
    root, stages = run_dir, run_dir / "logs" / "t" / "stages"
    sft_name = f"t-{os.path.basename(tiny_model_path)}-sciworld_tiny-sft"
    step_dir = root / "outputs" / sft_name / "sciworld_tiny_train_step"
    # Killed with SIGKILL while DPO trains (step-level exploration and pairs done): the trainer
    # dies with the script, and the rerun trains again without exploring again.
    run = subprocess.Popen(_command(root, tiny_model_path, "mixture"), cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 900
    while not any("train_dpo.py" in p for p in _processes_mentioning(str(root))):
        assert run.poll() is None and time.time() < deadline, "DPO did not start"
        time.sleep(0.2)
    run.kill()
    run.wait()
    _assert_nothing_left(root)
    assert (stages / "mixture_round1_pairs.json").exists() and not (stages / "mixture_round1_dpo.json").exists()
    saved = {p: os.path.getmtime(p) for p in glob.glob(str(step_dir / "[!_]*.json"))}

    rerun = subprocess.run(_command(root, tiny_model_path, "mixture"), cwd=REPO_ROOT, capture_output=True, text=True,
                           timeout=1200)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert all(os.path.getmtime(p) == mtime for p, mtime in saved.items())
    assert "[done] sft" in rerun.stdout and "[done] mixture_round1_explore_step" in rerun.stdout
    assert "[run ] mixture_round1_dpo" in rerun.stdout and "[run ] mixture_round1_eval_test" in rerun.stdout
    # The expert's own evaluation ran once, beside SFT's, and is the comparison's reference row.
    assert (stages / "eval_expert_test.json").exists() and "Expert" in _compare_rows(root)
    assert len(glob.glob(str(root / "outputs" / "expert" / "sciworld_tiny_test" / "[!_]*.json"))) == 2
    step_episodes = [json.loads(open(p).read()) for p in glob.glob(str(step_dir / "[!_]*.json"))]
    assert len(step_episodes) == 3  # every train task with an expert trajectory
    experts = {r["id"]: r for r in json.loads((root / "sft.json").read_text())}
    acted = set()
    for episode in step_episodes:
        meta = episode["meta"]
        expert = experts[meta["id"]]["conversations"]
        # The replayed prefix is the expert's: instruction, OK, task, its replies and (up to the order
        # ScienceWorld lists a room's objects in) its observations.
        replayed, recorded = episode["conversations"][:3 + 2 * meta["prefix_steps"]], expert[:3 + 2 * meta["prefix_steps"]]
        assert [t for t in replayed if t["from"] == "gpt"] == [t for t in recorded if t["from"] == "gpt"]
        assert all(SciWorldEnv.same_observation(a["value"], b["value"]) for a, b in zip(replayed, recorded))
        if len(episode["conversations"]) > 3 + 2 * meta["prefix_steps"]:
            acted.add(f"{meta['id']}@step{meta['prefix_steps'] + 1}")
    pairs = json.loads((root / "pm" / "sciworld_tiny_pm_t_mixture_1.json").read_text())
    step_pairs = [p for p in pairs if "@step" in p["id"]]
    # The tiny model never earns reward: every agent step after a prefix loses to the expert's.
    assert {p["id"] for p in step_pairs} == acted
    assert all(len(p["chosen"]) == len(p["rejected"]) == 1 for p in step_pairs)
    assert len(pairs) > len(step_pairs)  # and the trajectory-level pairs
    assert (root / "ckpt" / f"t-{os.path.basename(tiny_model_path)}-sciworld_tiny-mixture-dpo-iter-1" /
            "eto_training.json").exists()
    assert "ETO mixture (round 1)" in _compare_rows(root)
    assert (root / "logs" / "t" / "efficiency.png").stat().st_size > 0


def test_selfplay_starts_from_the_base_model_and_keeps_it_when_there_is_nothing_to_learn(run_dir, tiny_model_path):
    """The tiny model earns no reward, so self-play finds no pair and no success: every row keeps
    the untuned model and repeats its evaluation, saying so, and no model is trained or saved."""
    root, stages = run_dir, run_dir / "logs" / "t" / "stages"
    name = os.path.basename(tiny_model_path)
    result = subprocess.run(_command(root, tiny_model_path, "selfplay"), cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[run ] sft" not in result.stdout and "[done] sft" not in result.stdout  # no SFT, no expert data
    explored = root / "outputs" / name / "sciworld_tiny_train_selfplay_t"  # the untuned model's: per experiment
    # 3 train tasks x 2 samples, played once: "RFT" is the base model, whose exploration stands.
    assert len(glob.glob(str(explored / "sample_*" / "[!_]*.json"))) == 3 * 2
    first = json.loads(open(glob.glob(str(explored / "sample_1" / "[!_]*.json"))[0]).read())
    assert first["meta"]["task_turn"] > 2  # the untuned model is shown an in-context example
    base_eval = json.loads((stages / "selfplay_base_eval_test.json").read_text())["episodes"]
    for stage in ("selfplay_eval_test", "selfplay_rft_eval_test", "selfplay_rft_eto_eval_test"):
        marker = json.loads((stages / f"{stage}.json").read_text())
        assert marker["unchanged"] == "1" and marker["episodes"] == base_eval
    assert not glob.glob(str(root / "ckpt" / "*selfplay*"))
    rows = _compare_rows(root)
    assert "Self-play: base model" in rows
    assert "Self-play: ETO (nothing to train on: unchanged)" in rows
    assert "nothing to train on" in (root / "logs" / "t" / "selfplay_dpo.log").read_text()
    bad = subprocess.run(_command(root, tiny_model_path) + ["--no_expert"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "only --method selfplay runs without expert trajectories" in bad.stderr


def test_ppo_trains_the_sft_model_on_its_own_episodes_and_resumes_from_its_checkpoint(run_dir, tiny_model_path):
    root, stages = run_dir, run_dir / "logs" / "t" / "stages"
    name = os.path.basename(tiny_model_path)
    model = root / "ckpt" / f"t-{name}-sciworld_tiny-ppo"
    # Killed (SIGKILL, the trainer dies with the script) once the second step's episodes are saved:
    # the first step's checkpoint is on disk.
    _start_and_kill_when_saved(_command(root, tiny_model_path, "ppo"), str(model / "rollouts" / "step_2.json"),
                               signal.SIGKILL, root)
    assert not (model / "eto_training.json").exists() and glob.glob(str(model / "checkpoint-*"))
    first_step = model / "rollouts" / "step_1.json"
    first_mtime = os.path.getmtime(first_step)

    rerun = subprocess.run(_command(root, tiny_model_path, "ppo"), cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "[run ] ppo_train" in rerun.stdout and "[run ] ppo_eval_test" in rerun.stdout
    assert "resuming from" in (root / "logs" / "t" / "ppo_train.log").read_text()
    assert os.path.getmtime(first_step) == first_mtime  # the finished step was not replayed
    trained = json.loads((model / "eto_training.json").read_text())
    assert trained["base_model"] == str(root / "ckpt" / f"t-{name}-sciworld_tiny-sft")  # from the SFT policy
    assert trained["data"]["steps"] == 3  # 3 train tasks, one per step
    for step in (1, 2, 3):  # each step: one task, played twice by the policy of that step
        played = json.loads((model / "rollouts" / f"step_{step}.json").read_text())
        assert len(played) == 2 and played[0]["meta"]["id"] == played[1]["meta"]["id"]
    assert "PPO" in _compare_rows(root)
    assert json.loads((stages / "ppo_eval_test.json").read_text())["method"] == "ppo"


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(not _chromium(), reason="Chromium is not installed (bash setup.sh installs it from Debian's "
                                            "packages when run as root; --no-browser skips it)")
def test_the_run_viewer_in_a_real_browser(run_dir, tiny_model_path, tmp_path):
    """The page of this module's run (rerunning finds every stage done and rebuilds it), loaded by
    headless Chromium: every evaluation's table lists each of its episodes, and a pair opens at the
    first turn where chosen and rejected differ."""
    root = run_dir
    result = subprocess.run(_command(root, tiny_model_path), cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    page = root / "logs" / "t" / "view.html"
    assert "view.html" in result.stdout

    def dom(fragment):
        shown = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                                f"{page.as_uri()}#{fragment}"], capture_output=True, text=True, timeout=120)
        assert "data-loaded-ms" in shown.stdout, shown.stderr[-2000:]  # the script ran to its end
        return shown.stdout

    evaluations = len(re.findall(r"<option ", dom("eval=0")))
    assert evaluations >= 3  # SFT, the expert, ETO round 1 at least
    for i in sorted({0, evaluations // 2, evaluations - 1}):  # a browser start each: three of them
        html = dom(f"eval={i}")
        folder = re.search(r'<p class="muted">(.*?) · average reward', html).group(1)
        listed = re.findall(r'<tr class="clickable"><td>([^<]*)</td>', html)
        assert sorted(listed) == sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(folder, "[!_]*.json")))

    pairs = json.loads((root / "pm" / "sciworld_tiny_pm_t_1.json").read_text())
    chosen, rejected = pairs[0]["chosen"], pairs[0]["rejected"]
    diverge = next(k for k, (a, b) in enumerate(zip(chosen, rejected)) if a != b)
    html = dom("pair=0/0")
    assert f"they part at turn {diverge + 1}" in html
    first = re.findall(r'<div class="turn gpt divergent">(.*?)</div></div>', html, re.S)
    assert len(first) == 2  # one per side, each the side's own reply at that turn
    for side, shown in zip((chosen, rejected), first):
        assert html_module.escape(side[diverge]["value"].splitlines()[0], quote=False)[:60] in shown

    screenshot = tmp_path / "view.png"
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={screenshot}",
                    "--window-size=1400,900", f"{page.as_uri()}#tasks=test"], capture_output=True, timeout=120)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
