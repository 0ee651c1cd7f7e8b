"""run_eto.sh end to end on the toy environment (the counter: episodes take milliseconds), from the
tiny randomly initialised Llama of conftest (real architecture, tokenizer and chat template), served
by FastChat's transformers worker: the real driver, real servers and real training, in seconds a
stage. Its rewards mean nothing (the tiny model never parses, so every episode fails): what is
tested is the run's machinery. Every path of the run holds a space.

- One run is killed with SIGKILL in each of its stages in turn (the stage's process frozen at the
  moment, so that it cannot finish first): nothing it started lives on, the stage is not marked,
  nothing finished is touched, and the last rerun ends with the report of a run nobody
  interrupted. Another is stopped with SIGTERM (Ctrl-C): the trap stops everything it started.
- A second run of the same experiment is refused; a run with every stage done rebuilds the report.
- A run continued without its checkpoints trains them again (same weights here); one whose SFT
  recorded other weights moves every later stage aside and starts again from the top.
- Each other method (Best-of-N, RFT, the mixture, PPO, self-play) in the same experiment: its
  plan, its kill and resume, and the empty-data rules.
- Headless Chromium loads the run's view.html.

tests/test_eto_real.py runs the driver on the real things: the bundled model on ScienceWorld, and vLLM.
"""

import glob
import html as html_module
import json
import os
import re
import shutil
import signal
import subprocess
import time

import psutil
import pytest
import requests
import torch

from conftest import assert_nothing_left, kill_in_stage

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ETO_STAGES = ("expert_data", "sft", "eval_sft_test", "eval_expert_test", "round1_explore", "round1_pairs",
              "round1_dpo", "round1_eval_test")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_path):
    root = tmp_path_factory.mktemp("eto run")  # a space in every path of the run
    # The tiny model's replies never parse, so its episodes run to the step limit.
    (root / "counter_tiny.json").write_text(json.dumps({"extends": "counter", "max_tasks": {"train": 3, "test": 2},
                                                        "max_steps": 5}))
    q = json.dumps  # a TOML basic string
    (root / "preset.toml").write_text(f"""
extends = "demo"
exp_config = {q(str(root / "counter_tiny.json"))}
sft_data = {q(str(root / "sft.json"))}
output_dir = {q(str(root / "outputs"))}
pairs_dir = {q(str(root / "pm"))}
log_root = {q(str(root / "logs"))}
engine = "hf"
max_new_tokens = 8
sft_args = "--num_train_epochs 1 --learning_rate 1e-3 --model_max_length 512 --save_strategy no"
dpo_args = "--num_train_epochs 1 --model_max_length 512 --save_strategy no"
bon_samples = 2
rft_samples = 2
selfplay_samples = 2
ppo_generations = 2
ppo_tasks_per_step = 1
ppo_micro_batch = 2
ppo_args = "--num_train_epochs 1 --model_max_length 512 --save_steps 1 --save_total_limit 1"
cpu_train_portable = 2  # so that the trainers' numerics are those of any x86 machine
""")
    return root


def _command(root, tiny_model_path, method="eto", exp="t"):
    return ["bash", "run_eto.sh", "--preset", str(root / "preset.toml"), "--method", method, "counter", exp,
            tiny_model_path, str(root / "ckpt")]


def _run(command, timeout=600):
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _report_results(root, exp="t"):
    """report.md without its title (it names the experiment) and its wall-time table."""
    text = (root / "logs" / exp / "report.md").read_text()
    return text.split("\n", 1)[1].split("| stage | wall time (s) |")[0]


def _marker(root, stage, exp="t"):
    return json.loads((root / "logs" / exp / "stages" / f"{stage}.json").read_text())


def test_bad_arguments_fail_with_one_line():
    for args, message in ((["nosuchtask"], "unknown task 'nosuchtask'"),
                          (["sciworld", "x", "/no/such/model"], "model folder '/no/such/model' not found"),
                          (["--preset", "nope", "sciworld"], "unknown preset 'nope'"),
                          (["--rounds", "two", "sciworld"], "--rounds must be"),
                          (["--engine", "tgi", "sciworld"], "--engine must be auto, vllm or hf"),
                          (["--method", "sft", "sciworld"], "--method must be"),
                          (["--no_expert", "sciworld"], "only --method selfplay runs without expert trajectories"),
                          (["--bogus", "sciworld"], "unknown option --bogus")):
        result = subprocess.run(["bash", "run_eto.sh", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode != 0 and message in result.stderr, (args, result.stderr)
        assert result.stderr.strip().count("\n") == 0, result.stderr
    usage = subprocess.run(["bash", "run_eto.sh", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert usage.returncode == 0 and "Usage: bash run_eto.sh" in usage.stdout and "--method" in usage.stdout


def test_a_run_killed_in_every_stage_ends_with_the_report_of_an_uninterrupted_one(run_dir, tiny_model_path):
    root, stages = run_dir, run_dir / "logs" / "t" / "stages"
    finished, saved = {}, {}
    explored = str(root / "outputs" / "*sft" / "counter_tiny_train" / "[!_]*.json")
    after = {"round1_explore": explored}  # the expert's counter episodes take milliseconds: see test_eto_real

    def second_run_is_refused():  # while a run lives, a second one of the same experiment is refused
        second = subprocess.run(_command(root, tiny_model_path), cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=120)
        assert second.returncode != 0 and "experiment 't' is already running" in second.stderr
        assert second.stderr.strip().count("\n") == 0

    for i, name in enumerate(ETO_STAGES):
        kill_in_stage(_command(root, tiny_model_path), name, root, after.get(name),
                       second_run_is_refused if name == "sft" else None)
        assert not (stages / f"{name}.json").exists(), name  # killed inside: not marked done
        for earlier in ETO_STAGES[:i]:  # nothing finished was made again
            assert (stages / f"{earlier}.json").stat().st_mtime == finished.setdefault(
                earlier, (stages / f"{earlier}.json").stat().st_mtime), (name, earlier)
        if name in after:  # the episodes saved so far are kept
            saved.update({p: os.path.getmtime(p) for p in glob.glob(after[name])})
            assert 1 <= len(glob.glob(after[name])) <= 3

    last = _run(_command(root, tiny_model_path))
    for name in ETO_STAGES[:-1]:
        assert f"[done] {name}" in last.stdout
    assert "[run ] round1_eval_test" in last.stdout and "| round 1 |" in last.stdout
    assert all(os.path.getmtime(p) == mtime for p, mtime in saved.items())

    pairs = json.loads((root / "pm" / "counter_tiny_pm_t_1.json").read_text())
    assert len(pairs) == 3  # the tiny model fails every train task: each pairs with its expert
    dpo = _marker(root, "round1_dpo")
    assert dpo["loss"] == "sigmoid" and (dpo["beta"], dpo["lr"]) == ("0.1", "1e-5")  # the demo's round 1
    assert dpo["weights"] and dpo["weights_sketch"] and float(dpo["update_norm"]) > 0
    assert (root / "ckpt" / f"t-{os.path.basename(tiny_model_path)}-counter_tiny-dpo-iter-1" / "eto_training.json").exists()
    assert _marker(root, "eval_sft_test")["episodes"].endswith("-counter_tiny-sft/counter_tiny_test")
    report = (root / "logs" / "t" / "report.md").read_text()
    assert "| SFT |" in report and "| round 1 |" in report and "| 3 |" in report
    assert (root / "logs" / "t" / "report.png").stat().st_size > 0
    if torch.cuda.device_count() == 0:  # cpu_train_portable: both trainers ran on AVX2 kernels, 2 threads
        for log in ("sft.log", "round1_dpo.log"):
            assert "note: CPU numerics: ATen kernels AVX2, MKL_CBWR=AVX2,STRICT, ONEDNN_MAX_CPU_ISA=AVX2, 2 threads" \
                in (root / "logs" / "t" / log).read_text()

    uninterrupted = _run(_command(root, tiny_model_path, exp="u"))
    assert "[done]" not in uninterrupted.stdout
    assert _report_results(root, "u") == _report_results(root, "t")
    assert _marker(root, "sft", "u")["weights"] == _marker(root, "sft")["weights"]  # killed and run again: the same model
    assert json.loads((root / "pm" / "counter_tiny_pm_u_1.json").read_text()) == pairs

    (root / "logs" / "t" / "report.md").unlink()
    kill_in_stage(_command(root, tiny_model_path), "finish", root)  # while the report is written
    again = _run(_command(root, tiny_model_path))  # every stage done: only the report is rebuilt
    assert "[run ]" not in again.stdout and "| round 1 |" in again.stdout and "final model:" in again.stdout
    assert "view.html" in again.stdout
    assert _report_results(root, "t") == _report_results(root, "u")

    made = (root / "pm" / "counter_tiny_pm_t_1.json").read_bytes()
    (stages / "round1_pairs.json").unlink()  # one stage made again: the same pairs, and nothing after it
    redo = _run(_command(root, tiny_model_path))
    assert "[run ] round1_pairs" in redo.stdout and "[done] round1_dpo" in redo.stdout
    assert "[done] round1_eval_test" in redo.stdout and "serving " not in redo.stdout
    assert (root / "pm" / "counter_tiny_pm_t_1.json").read_bytes() == made


def test_a_run_stopped_with_sigterm_stops_everything_it_started(run_dir, tiny_model_path):
    root = run_dir
    if not (root / "logs" / "t" / "stages" / "round1_eval_test.json").exists():
        pytest.skip("needs the finished run of the first test")
    (root / "logs" / "t" / "stages" / "round1_eval_test.json").unlink()
    folder = root / "outputs" / f"t-{os.path.basename(tiny_model_path)}-counter_tiny-dpo-iter-1" / "counter_tiny_test"
    shutil.rmtree(folder)
    run = subprocess.Popen(_command(root, tiny_model_path), cwd=REPO_ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 300
    while not glob.glob(str(folder / "[!_]*.json")):  # an episode is saved: the servers are up
        assert run.poll() is None, run.stdout.read()
        assert time.time() < deadline
        time.sleep(0.05)
    controller = json.loads((root / "logs" / "t" / "servers.ready").read_text())["controller_url"]
    started = psutil.Process(run.pid).children(recursive=True)
    run.send_signal(signal.SIGTERM)  # to the driver alone, as Ctrl-C's SIGINT would reach it
    out, _ = run.communicate(timeout=120)
    assert run.returncode == 143 and "rerun the same command to resume" in out
    assert psutil.wait_procs(started, timeout=30)[1] == []
    assert_nothing_left(root)
    with pytest.raises(requests.ConnectionError):
        requests.post(controller + "/list_models", timeout=5)
    assert not (root / "logs" / "t" / "servers.ready").exists()
    _run(_command(root, tiny_model_path))
    assert len(glob.glob(str(folder / "[!_]*.json"))) == 2


def test_a_run_continued_without_its_checkpoints_trains_them_again_with_the_same_weights(run_dir, tiny_model_path):
    """A run continued on another machine has its markers, episodes and pairs (committed) but not
    its checkpoints: the stages that need a missing model train it again, and the weights must be
    the ones the first training recorded (same data, same seeds, same machine)."""
    root, stages = run_dir, run_dir / "logs" / "t" / "stages"
    if not (stages / "round1_eval_test.json").exists():
        pytest.skip("needs the finished ETO run of the first test")
    recorded = {stage: _marker(root, stage)["weights"] for stage in ("sft", "round1_dpo")}
    shutil.move(str(root / "ckpt"), str(root / "ckpt_first_machine"))  # elsewhere: no checkpoints,
    dpo_name = f"t-{os.path.basename(tiny_model_path)}-counter_tiny-dpo-iter-1"
    shutil.rmtree(root / "outputs" / dpo_name)  # and the round-1 evaluation still to do
    (stages / "round1_eval_test.json").unlink()

    rerun = _run(_command(root, tiny_model_path))
    assert "[done] round1_explore" in rerun.stdout and "[run ] round1_eval_test" in rerun.stdout
    assert "[redo] round1_dpo" in rerun.stderr and "[redo] sft" in rerun.stderr  # the DPO model starts from SFT's
    assert "[redo] eval" not in rerun.stderr and "warning" not in rerun.stderr
    for stage, weights in recorded.items():
        marker = _marker(root, stage)
        assert [again["weights"] for again in marker["remade"]] == [weights] and marker["remade"][0]["same_weights"]
        assert f"{stage} was trained again" in (root / "logs" / "t" / "report.md").read_text()
    assert len(glob.glob(str(root / "outputs" / dpo_name / "counter_tiny_test" / "[!_]*.json"))) == 2


def test_a_run_continued_where_training_gives_other_weights_makes_again_what_used_the_first_model(
        run_dir, tiny_model_path):
    """The uninterrupted run "u" as a run continued on another processor, whose SFT recorded
    other weights than this machine's training gives: the rerun trains SFT, finds the weights
    differ, moves every later stage aside and starts again from the top, which plays, pairs and
    trains everything after SFT again from the new model: the same results here (same machine)."""
    root, stages = run_dir, run_dir / "logs" / "u" / "stages"
    if not (stages / "round1_eval_test.json").exists():
        pytest.skip("needs the uninterrupted run of the first test")
    finished = _report_results(root, "u")
    episodes = lambda folder: {p.name: json.loads(p.read_text())["conversations"]  # noqa: E731
                               for p in folder.glob("[!_]*.json")}
    sft_name = f"u-{os.path.basename(tiny_model_path)}-counter_tiny-sft"
    first_episodes = episodes(root / "outputs" / sft_name / "counter_tiny_test")
    marker = _marker(root, "sft", "u")
    real, marker["weights"] = marker["weights"], "0123456789abcdef"  # what the other processor's training made
    sketch = [float(v) for v in marker["weights_sketch"].split(",")]
    marker["weights_sketch"] = ",".join(repr(v * 1.01) for v in sketch)  # and not by rounding alone
    (stages / "sft.json").write_text(json.dumps(marker))
    for model in glob.glob(str(root / "ckpt" / "u-*")):  # checkpoints stay on the machine that trained them
        shutil.rmtree(model)
    (stages / "round1_eval_test.json").unlink()  # still to do: it needs the DPO model, which needs SFT's

    rerun = _run(_command(root, tiny_model_path, exp="u"))
    assert "[redo] sft" in rerun.stderr and "other weights" in rerun.stderr and "[again] run_eto.sh" in rerun.stderr
    assert "[redo] round1_dpo" not in rerun.stderr  # SFT's new weights superseded the DPO stage: trained anew
    assert "[run ] eval_sft_test" in rerun.stdout and "[run ] round1_dpo" in rerun.stdout  # after [again]
    assert "[done] eval_expert_test" in rerun.stdout  # no model in it: kept
    archive = root / "logs" / "u" / "superseded" / "sft-0123456789abcdef"
    assert {p.stem for p in (archive / "stages").glob("*.json")} == {
        "eval_sft_test", "round1_explore", "round1_pairs", "round1_dpo"}
    assert episodes(archive / "episodes" / sft_name / "counter_tiny_test") == first_episodes
    assert _marker(root, "sft", "u")["weights"] == real
    assert _marker(root, "sft", "u")["remade"][-1]["distance"] > 1e-3
    assert episodes(root / "outputs" / sft_name / "counter_tiny_test") == first_episodes  # made again, same here
    assert _report_results(root, "u") == finished
    assert "OTHER weights than the first run (0123456789abcdef, " in (root / "logs" / "u" / "report.md").read_text()


def test_the_loop_trains_on_two_cpu_processes_and_a_kill_during_training_leaves_nothing(run_dir, tiny_model_path):
    """cpu_train_processes = 2: every trainer runs under torchrun (DDP over gloo, the cores shared
    out) with the preset's global batch. Killed while the SFT's ranks train, nothing of the run
    lives on (torchrun gets the stage's parent-death signal and stops its ranks); the rerun
    finishes, each training saying once that its 2 processes train together."""
    q = json.dumps
    (run_dir / "ranks.toml").write_text(f"""
extends = {q(str(run_dir / "preset.toml"))}
cpu_train_processes = 2
sft_batch = 2
dpo_batch = 2
ppo_micro_batch = 1
""")
    command = ["bash", "run_eto.sh", "--preset", str(run_dir / "ranks.toml"), "counter", "ranks", tiny_model_path,
               str(run_dir / "ckpt")]
    kill_in_stage(command, "sft", run_dir, after=str(run_dir / "ckpt" / "ranks-*-sft" / ".lock"))
    result = _run(command)
    assert "2 training processes" in result.stdout
    for stage in ("sft", "round1_dpo"):
        log = (run_dir / "logs" / "ranks" / f"{stage}.log").read_text()
        assert "torchrun --standalone --nproc_per_node 2" in log and "--gradient_accumulation_steps 1" in log
        assert log.count("the 2 processes train together on the CPU") == log.count("==== ") - log.count("already holds")
        assert log.count("\nsaved ") == 1, log[-2000:]
    assert (run_dir / "logs" / "ranks" / "report.md").exists()


def _compare_rows(root):
    lines = (root / "logs" / "t" / "compare.md").read_text().split("## Reward per round")[0].splitlines()
    return [line.split(" | ")[0].strip("| ") for line in lines if line.startswith("| ") and "---" not in line][1:]


def test_best_of_n_samples_the_sft_model_and_resumes_after_a_kill(run_dir, tiny_model_path):
    root = run_dir
    sft_marker = (root / "logs" / "t" / "stages" / "sft.json").read_text()
    folder = root / "outputs" / f"t-{os.path.basename(tiny_model_path)}-counter_tiny-sft" / "counter_tiny_test_bon"
    kill_in_stage(_command(root, tiny_model_path, "bon"), "bon_eval_test", root, str(folder / "sample_*" / "[!_]*.json"),
                   text="--exp_name _test_bon")
    saved = {p: os.path.getmtime(p) for p in glob.glob(str(folder / "sample_*" / "[!_]*.json"))}
    rerun = _run(_command(root, tiny_model_path, "bon"))
    assert saved and all(os.path.getmtime(p) == mtime for p, mtime in saved.items())
    assert "[done] sft" in rerun.stdout and "[done] eval_sft_test" in rerun.stdout and "[run ] bon_eval_test" in rerun.stdout
    assert (root / "logs" / "t" / "stages" / "sft.json").read_text() == sft_marker  # its SFT model, not trained again
    assert len(glob.glob(str(folder / "sample_*" / "[!_]*.json"))) == 2 * 2  # 2 test tasks x 2 samples
    marker = _marker(root, "bon_eval_test")
    assert (marker["method"], marker["samples"], marker["episodes"]) == ("bon", "2", str(folder))
    assert "--temperature 0.7 --num_samples 2" in (root / "logs" / "t" / "bon_eval_test.log").read_text()
    rows = _compare_rows(root)
    assert "SFT" in rows and "Best-of-2" in rows and "Mean-of-2" in rows
    assert "Best-of-2" in rerun.stdout  # the comparison is printed at the end


def test_rft_trains_from_the_base_model_on_new_successes_keeps_the_policy_without_and_resumes(run_dir, tiny_model_path):
    """The tiny random model solves no task, so one episode it saved is marked a success here (as
    a real policy's would be): round 1 trains from the base model on the experts plus that episode.
    Round 2 finds no new success: training on the same data again would make round 1's model, so
    that model stays, with its evaluation."""
    root = run_dir
    command = _command(root, tiny_model_path, "rft") + ["--rounds", "2"]
    kill_in_stage(command, "rft_round1_data", root, text="construct_rft_data.py", sig=signal.SIGTERM)
    assert not (root / "logs" / "t" / "stages" / "rft_round1_data.json").exists()
    folder = root / "outputs" / f"t-{os.path.basename(tiny_model_path)}-counter_tiny-sft" / "counter_tiny_train_rft"
    marked = sorted(glob.glob(str(folder / "sample_*" / "[!_]*.json")))[0]
    episode = json.loads(open(marked).read())
    episode["meta"]["success"] = True
    with open(marked, "w") as f:
        json.dump(episode, f)

    rerun = _run(command)
    for stage in ("rft_round1_data", "rft_round1_sft", "rft_round1_eval_test", "rft_round2_explore", "rft_round2_data"):
        assert f"[run ] {stage}" in rerun.stdout
    assert "[done] rft_round1_explore" in rerun.stdout
    assert len(glob.glob(str(folder / "sample_*" / "[!_]*.json"))) == 3 * 2  # 3 train tasks x 2 samples
    experts = json.loads((root / "sft.json").read_text())
    data = json.loads((root / "pm" / "counter_tiny_rft_t_1.json").read_text())
    assert data[:len(experts)] == experts and len(data) == len(experts) + 1
    replies = [turn["value"] for turn in episode["conversations"] if turn["from"] == "gpt"]
    assert data[-1]["conversations"][-1]["value"] == replies[-1]  # the marked episode, up to its last reply
    model = root / "ckpt" / f"t-{os.path.basename(tiny_model_path)}-counter_tiny-rft-iter-1"
    assert json.loads((model / "eto_training.json").read_text())["base_model"] == tiny_model_path  # not the SFT policy

    assert json.loads((root / "pm" / "counter_tiny_rft_t_2.json").read_text()) == data
    assert _marker(root, "rft_round2_sft")["unchanged"] == "1"
    round2 = _marker(root, "rft_round2_eval_test")
    assert round2["unchanged"] == "1" and round2["episodes"] == _marker(root, "rft_round1_eval_test")["episodes"]
    assert not (root / "ckpt" / f"t-{os.path.basename(tiny_model_path)}-counter_tiny-rft-iter-2").exists()
    assert "RFT (round 2) (nothing to train on: unchanged)" in _compare_rows(root)
    per_round = (root / "logs" / "t" / "compare.md").read_text().split("## Reward per round")[1]
    rft = next(line for line in per_round.splitlines() if line.startswith("| RFT |")).strip("| ").split(" | ")
    assert rft[3] != "" and rft[4] == rft[3]  # round 1 evaluated, round 2 its evaluation again


def test_mixture_adds_step_level_pairs_from_expert_prefixes_and_resumes(run_dir, tiny_model_path):
    root = run_dir
    kill_in_stage(_command(root, tiny_model_path, "mixture"), "mixture_round1_dpo", root, text="train_dpo.py")
    stages = root / "logs" / "t" / "stages"
    assert (stages / "mixture_round1_pairs.json").exists() and not (stages / "mixture_round1_dpo.json").exists()
    step_dir = root / "outputs" / f"t-{os.path.basename(tiny_model_path)}-counter_tiny-sft" / "counter_tiny_train_step"
    saved = {p: os.path.getmtime(p) for p in glob.glob(str(step_dir / "[!_]*.json"))}
    rerun = _run(_command(root, tiny_model_path, "mixture"))
    assert all(os.path.getmtime(p) == mtime for p, mtime in saved.items())
    assert "[done] sft" in rerun.stdout and "[done] mixture_round1_explore_step" in rerun.stdout
    assert "[run ] mixture_round1_dpo" in rerun.stdout and "[run ] mixture_round1_eval_test" in rerun.stdout
    experts = {r["id"]: r["conversations"] for r in json.loads((root / "sft.json").read_text())}
    acted = set()
    assert len(glob.glob(str(step_dir / "[!_]*.json"))) == 3  # every train task with an expert trajectory
    for path in glob.glob(str(step_dir / "[!_]*.json")):
        episode = json.loads(open(path).read())
        meta, turns = episode["meta"], episode["conversations"]
        prefix = 3 + 2 * meta["prefix_steps"]  # instruction, OK, task, then the expert's replayed steps
        assert turns[:prefix] == experts[meta["id"]][:prefix]
        if len(turns) > prefix:
            acted.add(f"{meta['id']}@step{meta['prefix_steps'] + 1}")
    pairs = json.loads((root / "pm" / "counter_tiny_pm_t_mixture_1.json").read_text())
    step_pairs = [p for p in pairs if "@step" in p["id"]]
    assert {p["id"] for p in step_pairs} == acted and acted  # every agent step after a prefix loses to the expert's
    assert all(len(p["chosen"]) == len(p["rejected"]) == 1 for p in step_pairs)
    assert len(pairs) > len(step_pairs)  # and the trajectory-level pairs
    assert (root / "ckpt" / f"t-{os.path.basename(tiny_model_path)}-counter_tiny-mixture-dpo-iter-1" /
            "eto_training.json").exists()
    assert "ETO mixture (round 1)" in _compare_rows(root) and "Expert" in _compare_rows(root)
    assert len(glob.glob(str(root / "outputs" / "expert" / "counter_tiny_test" / "[!_]*.json"))) == 2
    assert (root / "logs" / "t" / "efficiency.png").stat().st_size > 0


def test_selfplay_starts_from_the_base_model_and_keeps_it_when_there_is_nothing_to_learn(run_dir, tiny_model_path):
    """The tiny model earns no reward, so self-play finds no pair and no success: every row keeps
    the untuned model and repeats its evaluation, saying so, and no model is trained or saved."""
    root = run_dir
    name = os.path.basename(tiny_model_path)
    result = _run(_command(root, tiny_model_path, "selfplay"))
    assert "[run ] sft" not in result.stdout and "[done] sft" not in result.stdout  # no SFT, no expert data
    explored = root / "outputs" / name / "counter_tiny_train_selfplay_t"  # the untuned model's: per experiment
    assert len(glob.glob(str(explored / "sample_*" / "[!_]*.json"))) == 3 * 2  # played once, for both rows
    first = json.loads(open(glob.glob(str(explored / "sample_1" / "[!_]*.json"))[0]).read())
    assert first["meta"]["task_turn"] > 2  # the untuned model is shown an in-context example
    base_eval = _marker(root, "selfplay_base_eval_test")["episodes"]
    for stage in ("selfplay_eval_test", "selfplay_rft_eval_test", "selfplay_rft_eto_eval_test"):
        marker = _marker(root, stage)
        assert marker["unchanged"] == "1" and marker["episodes"] == base_eval
    assert not glob.glob(str(root / "ckpt" / "*selfplay*"))
    rows = _compare_rows(root)
    assert "Self-play: base model" in rows and "Self-play: ETO (nothing to train on: unchanged)" in rows
    assert "nothing to train on" in (root / "logs" / "t" / "selfplay_dpo.log").read_text()


def test_ppo_trains_the_sft_model_on_its_own_episodes_and_resumes_from_its_checkpoint(run_dir, tiny_model_path):
    root = run_dir
    name = os.path.basename(tiny_model_path)
    model = root / "ckpt" / f"t-{name}-counter_tiny-ppo"
    run = subprocess.Popen(_command(root, tiny_model_path, "ppo"), cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while not (model / "rollouts" / "step_2.json").exists():  # the first step's checkpoint is on disk
        assert run.poll() is None and time.time() < deadline
        time.sleep(0.05)
    run.kill()
    run.wait()
    assert_nothing_left(root)
    assert not (model / "eto_training.json").exists() and glob.glob(str(model / "checkpoint-*"))
    first_step = model / "rollouts" / "step_1.json"
    first_mtime = os.path.getmtime(first_step)

    rerun = _run(_command(root, tiny_model_path, "ppo"))
    assert "[run ] ppo_train" in rerun.stdout and "[run ] ppo_eval_test" in rerun.stdout
    assert "resuming from" in (root / "logs" / "t" / "ppo_train.log").read_text()
    assert os.path.getmtime(first_step) == first_mtime  # the finished step was not replayed
    trained = json.loads((model / "eto_training.json").read_text())
    assert trained["base_model"] == str(root / "ckpt" / f"t-{name}-counter_tiny-sft")  # from the SFT policy
    assert trained["data"]["steps"] == 3  # 3 train tasks, one per step
    for step in (1, 2, 3):  # each step: one task, played twice by the policy of that step
        played = json.loads((model / "rollouts" / f"step_{step}.json").read_text())
        assert len(played) == 2 and played[0]["meta"]["id"] == played[1]["meta"]["id"]
    marker = _marker(root, "ppo_train")
    assert (marker["row"], marker["beta"], marker["lr"]) == ("ppo", "0.04", "1e-5")
    assert "PPO" in _compare_rows(root) and _marker(root, "ppo_eval_test")["method"] == "ppo"


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(not _chromium(), reason="Chromium is not installed (bash setup.sh installs it from Debian's "
                                            "packages when run as root; --no-browser skips it)")
def test_the_run_viewer_in_a_real_browser(run_dir, tiny_model_path, tmp_path):
    """The page of this module's run, loaded by headless Chromium: every evaluation's table lists
    each of its episodes, and a pair opens at the first turn where chosen and rejected differ."""
    root = run_dir
    if not (root / "logs" / "t" / "stages" / "round1_eval_test.json").exists():
        pytest.skip("needs the finished ETO run of the first test")
    page = root / "logs" / "t" / "view.html"

    def dom(fragment):
        shown = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                                f"{page.as_uri()}#{fragment}"], capture_output=True, text=True, timeout=120)
        assert "data-loaded-ms" in shown.stdout, shown.stderr[-2000:]  # the script ran to its end
        return shown.stdout

    evaluations = len(re.findall(r"<option ", dom("eval=0")))
    assert evaluations >= 3  # SFT, the expert, ETO round 1 at least
    for i in sorted({0, evaluations // 2, evaluations - 1}):  # a browser start each
        html = dom(f"eval={i}")
        folder = html_module.unescape(re.search(r'<p class="muted">(.*?) · average reward', html).group(1))
        listed = re.findall(r'<tr class="clickable"><td>([^<]*)</td>', html)
        assert sorted(listed) == sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(folder, "[!_]*.json")))

    pairs = json.loads((root / "pm" / "counter_tiny_pm_t_1.json").read_text())
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
