"""The run's machinery (eto/pipeline/), in process and in seconds: presets, settings handed to
bash as data, file names, the lock, the stage engine (markers, logs, resume, a given file, parts,
a model trained again and what it supersedes), the empty-data rules, each method's plan, and the
servers' stop. The commands the stage engine runs here are small Python programs; a stand-in
trainer (a script at a trainer's path that writes a model folder) drives the training stages'
mechanics. tests/test_eto_loop.py runs all of it for real through run_eto.sh."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from eto.pipeline import commands, markers, methods, rules, servers
from eto.pipeline.lock import hold
from eto.pipeline.paths import RunPaths, episode_folder
from eto.pipeline.settings import Preset, RunSettings, SettingsError, bash_pairs, load_preset
from eto.pipeline.setup import resolve
from eto.pipeline.stages import Restart, Run, StageError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable


def _settings(tmp_path, **preset):
    keys = dict(exp_config="counter", sft_data=str(tmp_path / "sft.json"), output_dir=str(tmp_path / "out"),
                pairs_dir=str(tmp_path / "pm"), log_root=str(tmp_path / "logs"), eval_splits=["test"], rounds=1)
    keys.update(preset)
    return RunSettings(task="counter", exp="x", model_path=str(tmp_path / "base"), save_dir=str(tmp_path / "ckpt"),
                       preset_name="test", preset=Preset(**keys), rounds=keys["rounds"], engine="hf", controller_port=1)


# ---------------------------------------------------------------------------- presets
def test_a_preset_is_its_parents_keys_then_its_own_then_its_tasks(tmp_path):
    (tmp_path / "base.toml").write_text(textwrap.dedent("""
        rounds = 2
        dpo_lr = [1e-6, 5e-7]
        sft_args = "--a 1"
        [task.webshop]
        rounds = 5
        eval_splits = ["test"]
        """))
    (tmp_path / "child.toml").write_text(textwrap.dedent("""
        extends = "base.toml"
        rounds = 3
        [task.alfworld]
        rounds = 1
        """))
    child = str(tmp_path / "child.toml")
    assert load_preset(child, "sciworld").rounds == 3 and load_preset(child, "alfworld").rounds == 1
    webshop = load_preset(child, "webshop_demo")  # a task's variants take its table
    assert webshop.rounds == 3 and webshop.eval_splits == ["test"]  # the child's own key replaces the parent's table
    assert [webshop.round_value("dpo_lr", i) for i in (1, 2, 7)] == [1e-6, 5e-7, 5e-7]
    assert load_preset(child, "sciworld").exp_config == "sciworld" and \
        load_preset(child, "sciworld").sft_data == "data/sciworld_sft.json"


@pytest.mark.parametrize("text, message", [
    ("rounds = 2\nbeta = 0.1\n", "unknown key 'beta'"),
    ("rounds = \"two\"\n", "'rounds' must be a whole number"),
    ("dpo_lr = []\n", "'dpo_lr' must be a non-empty list of numbers"),
    ("extends = \"nope\"\n", "unknown preset 'nope'"),
    ("extends = \"p.toml\"\n", "'extends' forms a cycle"),
    ("sft_args = \"--a 'b\"\n", "'sft_args' is not a list of flags"),
    ("rounds = \n", "not a readable TOML preset"),
    ("reference_agents = [\"expert\", \"oracle\"]\n", "reference agent 'oracle' has no config eval_agent/configs/model/oracle.json"),
])
def test_a_bad_preset_is_one_line_that_names_the_key(tmp_path, text, message):
    (tmp_path / "p.toml").write_text(text)
    with pytest.raises(SettingsError, match=message) as error:
        load_preset(str(tmp_path / "p.toml"), "sciworld")
    assert "\n" not in str(error.value)


def test_settings_reach_bash_as_values_and_no_code_runs(tmp_path):
    tricky = ["a b", "it's", 'say "hi"', "$(touch pwned)", "`touch pwned`", "line\nbreak", "", "--x=1 2"]
    data = bash_pairs({"ONE": "x $HOME y", "LIST": tricky})
    (tmp_path / "pairs").write_bytes(data)
    script = textwrap.dedent("""
        set -euo pipefail
        while IFS= read -r -d '' name && IFS= read -r -d '' value; do printf -v "$name" '%s' "$value"; done < pairs
        printf '%s\\0' "$ONE" "${#LIST[@]}" "${LIST[@]}"
        """)
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, check=True).stdout
    assert out.decode().split("\0")[:-1] == ["x $HOME y", str(len(tricky)), *tricky]
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(SettingsError, match="EMPTY may not be empty"):  # set -u would call it unbound
        bash_pairs({"EMPTY": []})


# ---------------------------------------------------------------------------- arguments
def test_the_command_line_is_checked_before_anything_starts(tmp_path, tiny_model_path):
    model = tiny_model_path
    for args, message in ((["nosuchtask"], "unknown task 'nosuchtask'"),
                          (["counter", "x", str(tmp_path)], "has no config.json"),
                          (["counter", "bad name", model], "may only use letters"),
                          (["--preset", "nope", "counter", "x", model], "unknown preset 'nope'"),
                          (["--method", "sft", "counter", "x", model], "--method must be eto, step, mixture"),
                          (["--no_expert", "counter", "x", model], "only --method selfplay"),
                          (["--rounds", "-1", "counter", "x", model], "--rounds must be a non-negative integer"),
                          (["--engine", "tgi", "counter", "x", model], "--engine must be auto, vllm or hf"),
                          (["--workers", "0", "counter", "x", model], "--workers must be a positive integer"),
                          (["--preset"], "--preset needs a value"),
                          ([], "usage: bash run_eto.sh")):
        with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
            resolve(args, REPO_ROOT)


def test_paths_given_from_another_folder_are_taken_from_there_and_may_hold_spaces(tmp_path, tiny_model_path):
    caller = tmp_path / "my runs"
    (caller / "models").mkdir(parents=True)
    os.symlink(tiny_model_path, caller / "models" / "tiny model")
    settings = resolve(["--engine", "hf", "--method", "rft", "counter", "e", "models/tiny model/", "ckpt dir"], str(caller))
    assert settings.model_path == str(caller / "models" / "tiny model")  # it exists there
    assert settings.save_dir == "ckpt dir"  # nothing there by that name: relative to the repository
    assert settings.paths.sft_model == os.path.join("ckpt dir", "e-tiny model-counter-sft")
    assert settings.rounds == 1  # RFT's rounds (the preset's rft_rounds)
    demo = resolve(["--engine", "hf", "demo"], REPO_ROOT)
    assert (demo.task, demo.exp, demo.preset_name, demo.preset.exp_config) == ("sciworld", "demo", "demo", "sciworld_demo")


def test_every_file_of_a_run_is_named_in_one_place():
    paths = RunPaths("e", "sciworld_demo", "models/Smol", "ck", "out", "pm", "logs")
    assert paths.sft_model == "ck/e-Smol-sciworld_demo-sft"
    assert paths.model("dpo", 2) == "ck/e-Smol-sciworld_demo-dpo-iter-2"
    assert paths.model("ppo") == "ck/e-Smol-sciworld_demo-ppo"
    assert paths.pairs("1") == "pm/sciworld_demo_pm_e_1.json" and paths.rft_data("2") == "pm/sciworld_demo_rft_e_2.json"
    assert paths.episodes("ck/e-Smol-sciworld_demo-sft/", "_test") == "out/e-Smol-sciworld_demo-sft/sciworld_demo_test"
    assert paths.marker("sft") == "logs/e/stages/sft.json" and paths.stage_log("sft") == "logs/e/sft.log"
    # eval_agent.main files episodes by a config given as a path under its name, as the run does
    assert episode_folder("out", "m", "/x/y/counter_tiny.json", "_train") == "out/m/counter_tiny_train"


def test_a_second_run_of_an_experiment_is_refused_while_the_first_holds_its_lock(tmp_path):
    settings = _settings(tmp_path)
    os.makedirs(settings.paths.log_dir)
    first = os.open(settings.paths.lock, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    hold(first, settings)
    assert json.loads(open(settings.paths.settings).read())["exp"] == "x"
    second = os.open(settings.paths.lock, os.O_WRONLY | os.O_APPEND)
    with pytest.raises(SettingsError, match="experiment 'x' is already running"):
        hold(second, settings)
    os.close(first)  # the first run ends, however
    hold(second, settings)
    os.close(second)


# ---------------------------------------------------------------------------- the stage engine
def _counting(tmp_path, name="count"):
    """A command that appends a line to a file each time it runs, and prints."""
    return [PY, "-c", f"open({str(tmp_path / name)!r}, 'a').write('x\\n'); print('win: 0, tie: 0, lose: 1')"]


def test_a_stage_runs_once_with_its_log_and_its_marker(tmp_path, capsys):
    run = Run(_settings(tmp_path))
    run.stage("pairs", _counting(tmp_path), {"row": "round_1", "pairs": "p.json"})
    run.stage("pairs", _counting(tmp_path), {"row": "round_1"})
    assert (tmp_path / "count").read_text() == "x\n"  # the second call found it done
    out = capsys.readouterr().out
    assert "[run ] pairs" in out and "[done] pairs" in out and "       win: 0, tie: 0, lose: 1" in out
    marker = markers.read_marker(run.paths.stages_dir, "pairs")
    assert (marker["row"], marker["pairs"], marker["seconds"]) == ("round_1", "p.json", 0)
    log = open(run.paths.stage_log("pairs")).read()
    assert log.startswith("==== ") and "pairs: " in log and "win: 0" in log
    assert os.path.exists(run.paths.report + ".md") and os.path.exists(run.paths.view)


def test_a_failed_stage_is_not_marked_and_says_where_its_log_is(tmp_path):
    run = Run(_settings(tmp_path))
    with pytest.raises(StageError, match=r"stage 'sft' failed; last lines of .*sft.log:\n.*boom"):
        run.stage("sft", [PY, "-c", "import sys; print('boom'); sys.exit(3)"])
    assert not run.done("sft")


def test_a_given_file_is_used_and_one_made_here_then_deleted_is_made_again(tmp_path, capsys):
    run = Run(_settings(tmp_path))
    data = tmp_path / "sft.json"
    data.write_text("[]")
    run.stage("expert_data", _counting(tmp_path), given=str(data))
    assert "[data] expert_data" in capsys.readouterr().out and not (tmp_path / "count").exists()
    data.unlink()
    make = [PY, "-c", f"open({str(data)!r}, 'w').write('[1]')"]
    run.stage("expert_data", make, given=str(data))
    assert run.done("expert_data") and data.read_text() == "[1]"
    data.unlink()  # made here, then deleted: made again
    run.stage("expert_data", make, given=str(data))
    assert data.read_text() == "[1]"


def test_an_exploration_runs_in_parts_and_its_marker_names_its_episodes(tmp_path):
    run = Run(_settings(tmp_path))
    record = f"import sys; open({str(tmp_path / 'parts')!r}, 'a').write(' '.join(sys.argv[-4:]) + '\\n')"
    # the episode folder comes from eval_agent.main's own flags; the program here only records its part
    command = [PY, "-c", record, "eval_agent.main", "--model_name", "m", "--exp_config", "counter", "--output_dir",
               str(tmp_path / "out"), "--exp_name", "_train"]
    run.stage("round1_explore", command, parts=2)
    assert sorted(open(tmp_path / "parts").read().splitlines()) == ["--part_num 2 --part_idx 0", "--part_num 2 --part_idx 1"]
    assert markers.read_marker(run.paths.stages_dir, "round1_explore")["episodes"] == str(tmp_path / "out" / "m" / "counter_train")


def test_a_round_with_nothing_to_learn_keeps_its_policy_and_its_evaluation(tmp_path, capsys):
    run = Run(_settings(tmp_path, eval_splits=["dev", "test"]))
    run.keep("round2_dpo", "round2_eval", "round_2", "ck/policy", {"method": "eto", "round": "2"})
    dpo = markers.read_marker(run.paths.stages_dir, "round2_dpo")
    assert (dpo["model"], dpo["unchanged"]) == ("ck/policy", "1")
    for split in ("dev", "test"):
        marker = markers.read_marker(run.paths.stages_dir, f"round2_eval_{split}")
        assert marker["episodes"] == run.paths.episodes("ck/policy", f"_{split}") and marker["unchanged"] == "1"
        assert (marker["row"], marker["method"], marker["round"], marker["split"]) == ("round_2", "eto", "2", split)
    assert "nothing to train on: ck/policy stays the policy" in open(run.paths.stage_log("round2_dpo")).read()
    run.keep("round2_dpo", "round2_eval", "round_2", "ck/policy", {})
    assert capsys.readouterr().out.count("[done] round2_") == 3


TRAINER = '''
import json, os, struct, sys
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
out = args["--output_dir"]
start = args.get("--model_name_or_path")
with open(os.path.join(REPLAY, "trained"), "a") as f:
    f.write(out + "\\n")
bias = float(open(os.path.join(REPLAY, "bias")).read()) if os.path.exists(os.path.join(REPLAY, "bias")) else 0.0
base = json.load(open(os.path.join(start, "eto_training.json")))["value"] if start and os.path.exists(os.path.join(start, "eto_training.json")) else 1.0
value = base * 1.5 + bias
header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header + struct.pack("<4f", value, -value, 2 * value, 0.5))
json.dump({"value": value}, open(os.path.join(out, "eto_training.json"), "w"))
'''


def _trainer(tmp_path):
    """A stand-in trainer at a trainer's path: a model folder (real safetensors) whose weights follow
    its start model's, plus a bias read from ``bias`` (another machine's training)."""
    script = tmp_path / "fastchat" / "train" / "train.py"
    script.parent.mkdir(parents=True)
    script.write_text(f"REPLAY = {str(tmp_path)!r}\n" + TRAINER)
    base = tmp_path / "base"
    base.mkdir()
    script_args = [PY, str(script)]
    subprocess.run(script_args + ["--output_dir", str(base)], check=True)
    return lambda start, out: script_args + ["--model_name_or_path", str(start), "--output_dir", str(out)]


def test_a_missing_model_is_trained_again_when_needed_and_other_weights_supersede_what_used_it(tmp_path, capsys):
    train = _trainer(tmp_path)
    settings = _settings(tmp_path)
    sft, dpo = tmp_path / "ckpt" / "sft", tmp_path / "ckpt" / "dpo"
    run = Run(settings)
    run.stage("sft", train(tmp_path / "base", sft))
    first = markers.read_marker(run.paths.stages_dir, "sft")
    assert first["model"] == str(sft) and len(first["weights"]) == 16 and float(first["update_norm"]) > 0
    run.stage("eval_sft_test", _counting(tmp_path, "eval"), {"row": "SFT", "split": "test"})
    run.stage("dpo", train(sft, dpo))

    # Elsewhere (no checkpoints): the stages that made them are done, their models missing.
    for folder in (sft, dpo):
        for name in os.listdir(folder):
            os.remove(folder / name)
        os.rmdir(folder)
    (tmp_path / "trained").unlink()
    run = Run(settings)
    run.stage("sft", train(tmp_path / "base", sft))
    run.stage("dpo", train(sft, dpo))
    assert "its model is not on this machine" in capsys.readouterr().out
    run.stage("eval_dpo_test", [PY, "-c", "pass"], {"row": "round_1"})  # needs no model: nothing trained
    assert not (tmp_path / "trained").exists()
    run.ensure_model(str(dpo))  # a stage needs the DPO model: SFT's first, then DPO's, same weights
    assert open(tmp_path / "trained").read().split() == [str(sft), str(dpo)]
    err = capsys.readouterr().err
    assert "[redo] sft" in err and "[redo] dpo" in err and "the same weights as its first run" in err
    assert markers.read_marker(run.paths.stages_dir, "dpo")["remade"][0]["same_weights"]

    # Another machine's training gives other weights: what finished after SFT is moved aside.
    for folder in (sft, dpo):
        for name in os.listdir(folder):
            os.remove(folder / name)
    (tmp_path / "bias").write_text("0.25")
    run = Run(settings)
    run.stage("sft", train(tmp_path / "base", sft))
    with pytest.raises(Restart):
        run.ensure_model(str(sft))
    assert "gives other weights" in capsys.readouterr().err
    left = {m["stage"] for m in markers.read_markers(run.paths.stages_dir)}
    assert left == {"sft"}
    assert markers.read_marker(run.paths.stages_dir, "sft")["weights"] != first["weights"]
    assert {os.path.basename(p) for p in os.listdir(os.path.join(run.paths.superseded, f"sft-{first['weights']}", "stages"))} == \
        {"eval_sft_test.json", "dpo.json", "eval_dpo_test.json"}


def test_a_signal_stops_the_stage_command_and_leaves_no_marker(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from eto.pipeline.settings import Preset, RunSettings
        from eto.pipeline.stages import Interrupted, Run, raise_on_signals
        raise_on_signals()
        s = RunSettings(task="counter", exp="x", model_path="m", save_dir="c", preset_name="t",
                        preset=Preset(log_root={str(tmp_path / 'logs')!r}))
        try:
            Run(s).stage("slow", [sys.executable, "-c", "import time; open({str(tmp_path / 'started')!r}, 'w'); time.sleep(60)"])
        except Interrupted as stop:
            sys.exit(128 + stop.signum)
        """)
    proc = subprocess.Popen([PY, "-c", script], cwd=REPO_ROOT)
    deadline = time.time() + 60
    while not (tmp_path / "started").exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert not (tmp_path / "logs" / "x" / "stages" / "slow.json").exists()
    assert "time.sleep(60)" not in " ".join(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines())


# ---------------------------------------------------------------------------- rules and plans
def test_empty_data_rules_read_the_files_and_say_which_stage_to_redo(tmp_path):
    (tmp_path / "a.json").write_text("[]")
    (tmp_path / "b.json").write_text('[{"id": 1}]')
    (tmp_path / "c.json").write_text('[{"id": 1}]')
    (tmp_path / "bad.json").write_text("{oops")
    assert rules.no_records(str(tmp_path / "a.json")) and not rules.no_records(str(tmp_path / "b.json"))
    assert rules.same_records(str(tmp_path / "b.json"), str(tmp_path / "c.json"))
    with pytest.raises(ValueError, match="delete the stage marker that made it"):
        rules.no_records(str(tmp_path / "bad.json"))


class PlanRecorder(Run):
    """The plans' stages as they would run, without running them: a plan's data files are given."""

    def __init__(self, settings, data):
        super().__init__(settings)
        self.calls, self.data = [], data

    def stage(self, name, command, facts=None, serve=None, parts=1, given=None):
        self.calls.append((name, list(command), dict(facts or {}), serve, parts))
        for key in ("pairs", "data"):
            if key in (facts or {}):
                os.makedirs(os.path.dirname(facts[key]), exist_ok=True)
                with open(facts[key], "w") as f:
                    json.dump(self.data.get(name, [{"id": "t"}]), f)

    def keep(self, train_stage, eval_prefix, row, model, facts, suffix=""):
        self.calls.append((train_stage, ["keep", model, suffix], dict(facts), None, 1))

    def names(self):
        return [c[0] for c in self.calls]

    def command(self, name):
        return " ".join(next(c[1] for c in self.calls if c[0] == name))


def test_each_methods_plan_runs_its_stages_in_order_with_their_commands(tmp_path):
    settings = _settings(tmp_path, rounds=2, bon_samples=3, rft_samples=2, sft_batch=4, sft_micro_batch=1,
                         ppo_generations=2, ppo_tasks_per_step=2, ppo_micro_batch=1, dpo_beta=[0.1, 0.5], dpo_lr=[1e-6, 5e-7])
    settings.workers = 2
    sft = settings.paths.sft_model
    open(settings.preset.sft_data, "w").write('[{"id": "e"}]')

    bon = PlanRecorder(settings, {})
    assert methods.best_of_n(bon) == sft
    name, command, facts, serve, _ = bon.calls[0]
    assert (name, serve, facts["row"], facts["samples"]) == ("bon_eval_test", sft, "best_of_3", "3")
    assert "--exp_name _test_bon --temperature 0.7 --num_samples 3" in " ".join(command)

    # RFT: round 1 has a new success, round 2 none (its data is round 1's): kept.
    rft = PlanRecorder(settings, {"rft_round2_data": [{"id": "t"}]})
    final = methods.rft(rft)
    assert rft.names() == ["rft_round1_explore", "rft_round1_data", "rft_round1_sft", "rft_round1_eval_test",
                           "rft_round2_explore", "rft_round2_data", "rft_round2_sft"]
    assert final == settings.paths.model("rft", 1) and rft.calls[-1][1][:2] == ["keep", final]
    assert f"--model_name_or_path {settings.model_path} " in rft.command("rft_round1_sft")  # from the base model
    assert "--gradient_accumulation_steps 4" in rft.command("rft_round1_sft")
    assert rft.calls[0][4] == 2 and "--num_samples 2" in rft.command("rft_round1_explore")  # one part per worker
    assert rft.command("rft_round2_data").count("--episodes_dir") == 2  # every round's successes so far

    ppo = PlanRecorder(settings, {})
    methods.ppo(ppo)
    assert ppo.names() == ["ppo_train", "ppo_eval_test"]
    assert f"train_ppo.py --model_name_or_path {sft} --task counter" in ppo.command("ppo_train")
    assert "--per_device_train_batch_size 1 --gradient_accumulation_steps 4" in ppo.command("ppo_train")

    mixture = PlanRecorder(settings, {"mixture_round2_pairs": []})
    methods.dpo_rounds(mixture, "mixture")
    assert mixture.names() == ["mixture_round1_explore", "mixture_round1_explore_step", "mixture_round1_pairs",
                               "mixture_round1_dpo", "mixture_round1_eval_test", "mixture_round2_explore",
                               "mixture_round2_explore_step", "mixture_round2_pairs", "mixture_round2_dpo"]
    assert "--episodes_dir" in mixture.command("mixture_round1_pairs") and "--step_episodes_dir" in mixture.command("mixture_round1_pairs")
    assert "--beta 0.1 --learning_rate 1e-6" in mixture.command("mixture_round1_dpo")
    assert mixture.calls[-1][1][:2] == ["keep", settings.paths.model("mixture-dpo", 1)]  # round 2: no pair
    step = PlanRecorder(settings, {})
    methods.dpo_rounds(step, "step")
    assert "step_round1_explore" not in step.names() and "--beta 0.5 --learning_rate 1e-7" in step.command("step_round1_dpo")

    selfplay = PlanRecorder(settings, {"selfplay_pairs": [], "selfplay_rft_data": []})
    final = methods.selfplay(selfplay)
    assert selfplay.names() == ["selfplay_base_eval_test", "selfplay_explore", "selfplay_pairs", "selfplay_dpo",
                                "selfplay_rft_data", "selfplay_rft_sft", "selfplay_rft_eto_explore",
                                "selfplay_rft_eto_pairs", "selfplay_rft_eto_dpo", "selfplay_rft_eto_eval_test"]
    assert selfplay.calls[3][1] == ["keep", settings.model_path, "_selfplay_x"]  # no pair: the base model stays
    assert final == settings.paths.model("selfplay-rft-eto")

    # dose: ETO's round-1 stages, then one DPO run per learning rate with snapshots at the earlier
    # steps, each model evaluated under its own name
    settings.preset.dose_lr, settings.preset.dose_steps = [2e-6, 1e-5], [50, 10]
    dose = PlanRecorder(settings, {"round1_pairs": [{"id": "p"}]})
    methods.dose_response(dose)
    assert dose.names() == ["round1_explore", "round1_pairs", "dose_lr2e-6_dpo", "dose_lr2e-6_steps10_eval_test",
                            "dose_lr2e-6_steps50_eval_test", "dose_lr1e-5_dpo", "dose_lr1e-5_steps10_eval_test",
                            "dose_lr1e-5_steps50_eval_test"]
    trained = settings.paths.model("dose-lr1e-5")
    assert "--beta 0.1 --learning_rate 1e-5" in dose.command("dose_lr1e-5_dpo")
    assert dose.command("dose_lr1e-5_dpo").endswith("--max_steps 50 --snapshot_steps 10")
    served = [call[3] for call in dose.calls if call[0].startswith("dose_lr1e-5_steps")]
    assert served == [os.path.join(trained, os.path.basename(trained) + "-step-10"), trained]
    assert f"--episodes_dir {settings.paths.episodes(sft, '_train')}" in dose.command("round1_pairs")
    empty = PlanRecorder(settings, {"round1_pairs": []})
    assert methods.dose_response(empty) == sft and empty.names() == ["round1_explore", "round1_pairs"]

    # variants: round 1's stages, then per variant (sorted by name) its own pairs where it has pair
    # flags, one DPO at round 1's beta and lr with its DPO flags last, and its evaluation
    settings.preset.variant_pairs_args, settings.preset.variant_dpo_args = {"cut": "--cut_at_divergence"}, \
        {"nll": "--loss_type sigmoid sft"}
    variant = PlanRecorder(settings, {"round1_pairs": [{"id": "p"}], "variant_cut_pairs": [{"id": "p"}]})
    assert methods.variants(variant) == sft
    assert variant.names() == ["round1_explore", "round1_pairs", "variant_cut_pairs", "variant_cut_dpo",
                               "variant_cut_eval_test", "variant_nll_dpo", "variant_nll_eval_test"]
    assert variant.command("variant_cut_pairs").endswith("--cut_at_divergence")
    assert f"--data_path {settings.paths.pairs('1_cut')} " in variant.command("variant_cut_dpo")
    assert f"--data_path {settings.paths.pairs('1')} " in variant.command("variant_nll_dpo")
    assert variant.command("variant_nll_dpo").endswith("--loss_type sigmoid sft")
    assert "--beta 0.1 --learning_rate 1e-6" in variant.command("variant_nll_dpo")
    name, _, facts, serve, _ = variant.calls[-1]
    assert (facts["method"], facts["variant"], serve) == ("variant", "nll", settings.paths.model("variant-nll"))


def test_stopping_the_servers_ends_the_launcher_and_removes_its_ready_file(tmp_path):
    settings = _settings(tmp_path)
    os.makedirs(settings.paths.log_dir)
    sleeper = subprocess.Popen([PY, "-c", "import time; time.sleep(120)"])
    with open(settings.paths.servers_ready, "w") as f:
        json.dump({"pid": sleeper.pid, "model_path": "m", "controller_url": "http://127.0.0.1:1"}, f)
    assert servers.serving(settings) == "m"
    servers.stop(settings)
    assert sleeper.poll() is not None and not os.path.exists(settings.paths.servers_ready)
    assert servers.serving(settings) is None
    servers.stop(settings)  # nothing runs: nothing to do


def test_the_plans_evaluations_and_explorations_are_played_with_the_runs_settings(tmp_path):
    settings = _settings(tmp_path, eval_max_tasks=5, explore_max_tasks=7, num_examples=0, max_new_tokens=99)
    command = " ".join(commands.evaluation(settings, "ck/model", "test"))
    assert "--model_name model" in command and "--max_tasks 5" in command and "--num_examples 0" in command
    assert "--concurrency 1" in command and "--max_new_tokens 99" in command
    assert "--max_tasks 7" in " ".join(commands.exploration(settings, "ck/model"))



def test_sft_tasks_limits_sft_and_rfts_expert_part_but_not_exploration(tmp_path):
    """sft_tasks = N: the SFT stage trains on the first N expert trajectories, RFT's data keeps
    only those N of the expert's, and exploration still plays every train task it is given."""
    settings = _settings(tmp_path, sft_tasks=3, explore_max_tasks=7)
    sft_args = settings.bash_variables("s.json")["SFT_ARGS"]
    assert sft_args[-2:] == ["--max_samples", "3"]
    assert "--max_samples" not in commands.sft(settings, "base", "rft.json", "out")  # RFT's own SFT: all of its data
    assert " --expert_records 3" in " ".join(commands.rft_data(settings, "rft.json", ["episodes"]))
    assert "--max_tasks 7" in " ".join(commands.exploration(settings, "ck/model"))
    unlimited = _settings(tmp_path, sft_tasks=0)
    assert "--max_samples" not in unlimited.bash_variables("s.json")["SFT_ARGS"]
    assert "--expert_records" not in commands.rft_data(unlimited, "rft.json", ["episodes"])
