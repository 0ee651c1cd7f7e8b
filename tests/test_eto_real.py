"""run_eto.sh on the real things, end to end: the bundled SmolLM2-135M on ScienceWorld (its real
engine and JVM) served by FastChat's transformers worker, and the tiny model on vLLM (the default
engine where it runs), each stopped once on the way (SIGTERM, SIGKILL) and resumed. Small sizes:
what is checked is that every stage runs for real, that nothing of a stopped run lives on, and that
the report adds up (tests/test_eto_loop.py tests the machinery on the toy environment)."""

import glob
import json
import os
import signal
import subprocess

from conftest import kill_in_stage, needs_vllm

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _preset(root, exp_config, **keys):
    q = json.dumps
    lines = ['extends = "demo"', f"exp_config = {q(str(exp_config))}", f"sft_data = {q(str(root / 'sft.json'))}",
             f"output_dir = {q(str(root / 'outputs'))}", f"pairs_dir = {q(str(root / 'pm'))}",
             f"log_root = {q(str(root / 'logs'))}"] + [f"{k} = {q(v)}" for k, v in keys.items()]
    (root / "preset.toml").write_text("\n".join(lines) + "\n")
    return str(root / "preset.toml")


def _command(root, preset, task, model):
    return ["bash", "run_eto.sh", "--preset", preset, task, "real", model, str(root / "ckpt")]


def _run_eto(root, preset, task, model):
    result = subprocess.run(_command(root, preset, task, model), cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _check_report(root, config, train, test):
    stages = root / "logs" / "real" / "stages"
    for stage in ("expert_data", "sft", "eval_sft_test", "eval_expert_test", "round1_explore", "round1_pairs",
                  "round1_dpo", "round1_eval_test"):
        assert (stages / f"{stage}.json").exists(), stage
    experts = json.loads((root / "sft.json").read_text())
    assert len(experts) == train
    pairs = json.loads((root / "pm" / f"{config}_pm_real_1.json").read_text())
    assert 1 <= len(pairs) <= train
    for stage in ("eval_sft_test", "round1_eval_test"):
        folder = json.loads((stages / f"{stage}.json").read_text())["episodes"]
        assert len(glob.glob(os.path.join(folder, "[!_]*.json"))) == test
    report = (root / "logs" / "real" / "report.md").read_text()
    assert "| SFT |" in report and "| round 1 |" in report and f"| {len(pairs)} |" in report
    return report


def test_the_loop_with_the_bundled_model_on_scienceworld(tmp_path, bundled_model_path):
    steps = dict.fromkeys(["find-non-living-thing", "lifespan-longest-lived",
                           "lifespan-longest-lived-then-shortest-lived", "lifespan-shortest-lived"], 3)
    config = tmp_path / "sciworld_real.json"
    config.write_text(json.dumps({"extends": "sciworld_demo", "max_tasks": {"train": 2, "test": 1}, "max_steps": steps}))
    preset = _preset(tmp_path, config, engine="hf", max_new_tokens=48,
                     sft_args="--num_train_epochs 1 --learning_rate 1e-4 --model_max_length 1024 --save_strategy no",
                     dpo_args="--num_train_epochs 1 --model_max_length 1024 --save_strategy no")
    # Killed once the expert has played one train task, then stopped with SIGTERM while the SFT model
    # explores (ScienceWorld's JVMs and the worker all end): the episodes saved so far are kept.
    command = _command(tmp_path, preset, "sciworld", bundled_model_path)
    expert_played = str(tmp_path / "outputs" / "expert" / "sciworld_real_train" / "[!_]*.json")
    kill_in_stage(command, "expert_data", tmp_path, after=expert_played)
    saved = {p: os.path.getmtime(p) for p in glob.glob(expert_played)}
    assert len(saved) == 1 and not (tmp_path / "sft.json").exists()
    explored = str(tmp_path / "outputs" / "*-sft" / "sciworld_real_train" / "[!_]*.json")
    kill_in_stage(command, "round1_explore", tmp_path, after=explored, sig=signal.SIGTERM)
    assert glob.glob(explored)
    saved.update({p: os.path.getmtime(p) for p in glob.glob(explored)})
    result = _run_eto(tmp_path, preset, "sciworld", bundled_model_path)
    assert all(os.path.getmtime(p) == mtime for p, mtime in saved.items())
    assert "[done] sft" in result.stdout and "[run ] round1_explore" in result.stdout
    _check_report(tmp_path, "sciworld_real", train=2, test=1)
    assert "engine hf" in result.stdout
    sft = json.loads((tmp_path / "logs" / "real" / "stages" / "sft.json").read_text())
    assert float(sft["update_norm"]) > 0 and len(sft["weights"]) == 16


@needs_vllm
def test_the_loop_served_by_vllm(tmp_path, tiny_model_path):
    config = tmp_path / "counter_real.json"
    config.write_text(json.dumps({"extends": "counter", "max_tasks": {"train": 2, "test": 2}, "max_steps": 3}))
    preset = _preset(tmp_path, config, engine="vllm", max_new_tokens=16,
                     sft_args="--num_train_epochs 1 --model_max_length 512 --save_strategy no",
                     dpo_args="--num_train_epochs 1 --model_max_length 512 --save_strategy no")
    # Killed with SIGKILL while the SFT model is evaluated (vLLM's engine processes all end), then resumed.
    evaluated = str(tmp_path / "outputs" / "*-sft" / "counter_real_test" / "[!_]*.json")
    kill_in_stage(_command(tmp_path, preset, "counter", tiny_model_path), "eval_sft_test", tmp_path, after=evaluated)
    result = _run_eto(tmp_path, preset, "counter", tiny_model_path)
    assert "[run ] eval_sft_test" in result.stdout
    _check_report(tmp_path, "counter_real", train=2, test=2)
    assert "engine vllm, 16 episode(s) in flight per worker" in result.stdout
    servers = (tmp_path / "logs" / "real" / "servers.log").read_text()
    assert servers.count("fastchat.launch") == 3 and "--engine vllm" in servers  # the SFT model twice, then round 1's
