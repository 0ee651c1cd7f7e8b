"""The original ETO's protocol: task ids, splits, task turns, decoding, prompts, presets, and
published-format data flowing through pairing and training."""

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

import eto.construct.preference as cp
from eval_agent import prompt
from eval_agent.agents.base import Agent, Reply
from eval_agent.agents.fastchat_agent import stop_strings
from eval_agent.envs import SciWorldEnv
from eval_agent.config import load_config
from eval_agent.published_data import MIN_COVERAGE, check_published_file, map_records, task_text_index
from eval_agent.report import markdown
from eto.pipeline.settings import load_preset
from eval_agent.runner import EpisodeStore, run_tasks
from eval_agent.tasks import AlfWorldTask, SciWorldTask, WebShopTask
from eval_agent.tasks.sciworld import read_original_lists, task_numbers
from eval_agent.tasks.webshop import DEFAULT_DATA_DIR, original_indices
from eto_webshop.catalog import read_meta
from eto.io import DataError
from eto.records import load_preference_data, load_sft_data

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LISTS_DIR = os.path.join(os.environ.get("ETO_SHARED_DIR") or os.path.join(REPO_ROOT, "..", "shared"), "data", "eto")
needs_lists = pytest.mark.skipif(not os.path.isdir(LISTS_DIR), reason=f"the original's task lists are not in {LISTS_DIR}")
FIND_NON_LIVING_0 = ("Your task is to find a(n) non-living thing. First, focus on the thing. "
                     "Then, move it to the red box in the kitchen.")


# ------------------------------------------------------------------------------ ids and splits
def test_sciworld_ids_are_the_originals_number_and_variation():
    assert SciWorldTask.make("find-non-living-thing", 150).task_id == "13_150"
    assert SciWorldTask.make("boil", 7).task_id == "0_7"
    with pytest.raises(ValueError, match="unknown ScienceWorld task"):
        SciWorldTask.make("juggle", 1)
    for split in ("train", "dev", "test"):
        for task in SciWorldTask.load_split(split):
            assert task.task_id == f"{task_numbers()[task.task_name]}_{task.variation}"


@needs_lists
def test_sciworld_split_files_hold_exactly_the_originals_lists():
    _, lists = read_original_lists(LISTS_DIR)
    splits = {s: SciWorldTask.load_split(s) for s in ("train", "dev", "test")}
    assert {s: len(t) for s, t in splits.items()} == {"train": 1483, "dev": 194, "test": 211}
    for split, tasks in splits.items():
        assert {(t.task_name, t.variation) for t in tasks} == set(lists[split])
    # The original's quirk, kept: 54 seen-test (dev) tasks are also train tasks.
    assert len({t.task_id for t in splits["dev"]} & {t.task_id for t in splits["train"]}) == 54


@needs_lists
def test_alfworld_unseen_test_is_the_originals_list():
    with open(os.path.join(LISTS_DIR, "alfworld_gamefile_id.txt"), encoding="utf-8") as f:
        listed = {line.strip().split("/")[-1] for line in f if line.strip()}
    assert {t.task_id for t in AlfWorldTask.load_split("test")} == listed and len(listed) == 134


def test_webshop_original_lists_and_their_quirks():
    with open(os.path.join(REPO_ROOT, "data", "webshop_original_splits.json"), encoding="utf-8") as f:
        raw = json.load(f)
    assert [len(raw[s]) for s in ("train", "test", "test_500")] == [1824, 200, 500]
    lists = original_indices()
    assert len(lists["train"]) == 1823  # goal 4116 is listed twice; a task once
    assert len(set(lists["train"]) & set(lists["test"])) == 21 and not set(lists["train"]) & set(lists["test_500"])
    train, test, test_500 = (WebShopTask.load_split(s) for s in ("train", "test", "test_500"))
    if read_meta(DEFAULT_DATA_DIR)["source"] == "official":
        assert [t.goal_index for t in test] == lists["test"] and [t.goal_index for t in test_500] == lists["test_500"]
    else:  # a generated catalog cannot hold the official goal indices: rule-based ranges of the same sizes
        assert (len(train), len(test)) == (1824, 200) and test[0].task_id == "0" and train[0].task_id == "200"
        assert test_500[0].task_id == "2024"


# ------------------------------------------------------------------------------ episode protocol
class _Scripted(Agent):
    def __init__(self, replies):
        super().__init__({}, "scripted")
        self.replies = replies

    def _attempt(self, messages, attempt):
        return Reply(self.replies[(len(messages) - 3) // 2 % len(self.replies)])


def test_sciworld_task_turn_is_the_bare_description(tmp_path):
    config = load_config("task", "sciworld")
    task = SciWorldTask.make("find-non-living-thing", 0)
    env = SciWorldEnv(config)
    try:
        assert env.reset(task) == FIND_NON_LIVING_0
    finally:
        env.close()


def test_decoding_settings_are_the_originals():
    for name in ("fastchat", "openai"):
        config = load_config("model", name)
        assert config["max_new_tokens"] == 512 and config["stop"] == ["\nObservation:", "\nTask:", "\n---"]
        assert config["temperature"] == 0.0
    for name in ("sciworld", "alfworld", "webshop"):
        config = load_config("task", name)
        assert (config["action_parsing"], config["num_examples"], config["prompts"]) == ("first", 1, "auto")
    assert stop_strings("<|im_end|>", ["\nObservation:", "<|im_end|>"]) == ["<|im_end|>", "\nObservation:"]
    assert stop_strings(None, ["\nTask:"]) == ["\nTask:"]


def _preset(task, name):
    return load_preset(name, task)


def test_full_preset_is_the_originals_evaluation_and_training():
    sci = _preset("sciworld", "full")
    assert sci.eval_splits == ["dev", "test"]  # seen and unseen, as the paper's Table 2
    assert (sci.num_examples, sci.prompts, sci.max_new_tokens, sci.explore_temperature) == (1, "auto", 512, 0.0)
    assert (sci.rounds, sci.sft_batch, sci.dpo_batch) == (2, 64, 32)
    for flag in ("--num_train_epochs 3", "--learning_rate 2e-5", "--warmup_ratio 0.03", "--lr_scheduler_type cosine",
                 "--model_max_length 4096"):
        assert flag in " ".join(sci.sft_args.split())
    for flag in ("--num_train_epochs 3", "--warmup_ratio 0.1", "--lr_scheduler_type constant_with_warmup",
                 "--model_max_length 4096"):
        assert flag in " ".join(sci.dpo_args.split())
    # The original passes these two but its trainer never applies them: only the 4096 cut acts.
    assert "--max_prompt_length" not in sci.dpo_args and "--max_target_length" not in sci.dpo_args
    assert [sci.round_value(k, i) for i in (1, 2, 3) for k in ("dpo_beta", "dpo_lr")] == [0.1, 1e-6, 0.5, 5e-7, 0.5, 5e-7]
    # vLLM where it runs, with many episodes in flight; the transformers worker one at a time.
    assert (sci.engine, sci.concurrency, sci.worker_args) == ("auto", {"vllm": 16, "hf": 1}, "")
    # Best-of-10 (the paper's N; temperature 0.7 is ours), RFT 5 samples at 0.7, one round.
    assert (sci.bon_samples, sci.bon_temperature, sci.rft_samples, sci.rft_temperature, sci.rft_rounds) == (10, 0.7, 5, 0.7, 1)
    # PPO (settings of ours: the paper gives none): groups of 4, 8 tasks a step, 0.7, KL 0.04, lr 1e-6,
    # one pass over the train tasks, a checkpoint after every step.
    assert (sci.ppo_generations, sci.ppo_tasks_per_step, sci.ppo_micro_batch, sci.ppo_temperature, sci.ppo_beta,
            sci.ppo_lr) == (4, 8, 2, 0.7, 0.04, 1e-6)
    assert "--num_train_epochs 1" in sci.ppo_args and "--save_steps 1" in sci.ppo_args
    # Step-level pairs at the better of the paper's two step-level settings (Table 4), t seeded.
    assert (sci.step_seed, sci.step_beta, sci.step_lr) == (0, 0.5, 1e-7)
    # Self-play: 4 samples per task (ours) at the paper's temperature 1.0, one in-context example.
    assert (sci.selfplay_samples, sci.selfplay_temperature, sci.selfplay_margin, sci.selfplay_num_examples) == (4, 1.0, 0, 1)
    assert sci.cpu_train_args == "--bf16 True"  # autocast where the CPU has bf16; fp32 weights either way
    assert 'full_shard auto_wrap' in sci.gpu_train_args
    assert _preset("alfworld", "full").eval_splits == ["dev", "test"] and _preset("alfworld", "full").rounds == 1
    assert _preset("webshop", "full").eval_splits == ["test"] and _preset("webshop_demo", "full").eval_splits == ["test"]


def test_demo_preset_departs_only_where_stated():
    demo, full = _preset("sciworld", "demo"), _preset("sciworld", "full")
    assert (demo.eval_splits, demo.num_examples, demo.prompts, demo.max_new_tokens) == (["test"], 0, "ours", 128)
    assert demo.explore_temperature == 0.0 and demo.rounds == 1 and demo.exp_config == "sciworld_demo"
    assert demo.worker_args == "" and (demo.bon_samples, demo.bon_temperature) == (4, 0.7)
    assert (demo.rft_samples, demo.rft_temperature, demo.rft_rounds) == (2, 0.7, 1)
    assert (demo.ppo_generations, demo.ppo_tasks_per_step, demo.ppo_micro_batch, demo.ppo_temperature,
            demo.ppo_beta, demo.ppo_lr) == (2, 4, 1, 0.7, 0.04, 1e-5)  # 3 steps over the 12 train tasks
    assert (demo.step_seed, demo.step_beta, demo.step_lr) == (0, 0.5, 1e-6)  # step-level lr x10 as well, as DPO's
    assert (demo.dpo_beta, demo.dpo_lr) == ([0.1, 0.5], [1e-5, 5e-6])
    assert (demo.selfplay_samples, demo.selfplay_temperature, demo.selfplay_margin,
            demo.selfplay_num_examples) == (4, 1.0, 0, 1)  # the untuned model keeps its example
    assert (demo.sft_data, full.sft_data) == ("data/sciworld_demo_sft.json", "data/sciworld_sft.json")


def test_report_shows_seen_and_unseen_columns():
    summary = {"average_reward": 0.5, "success_rate": 0.25, "average_steps": 3.0, "n": 4}
    rows = {"SFT": {"splits": {"test": summary, "dev": summary}, "pairs": None}}
    header = markdown(rows, [], "t").splitlines()[2]
    assert header.index("seen (dev) reward") < header.index("unseen (test) reward")


# ------------------------------------------------------------------------------ prompts
def test_original_prompt_files_are_used_when_present_and_never_required(tmp_path, monkeypatch):
    monkeypatch.setattr(prompt, "ORIGINAL_DIR", str(tmp_path))
    for cached in (prompt.load_instruction, prompt.load_examples):
        cached.cache_clear()
    monkeypatch.setattr(prompt, "load_instruction", prompt.load_instruction.__wrapped__)
    monkeypatch.setattr(prompt, "load_examples", prompt.load_examples.__wrapped__)
    assert prompt.resolve_prompts("sciworld", "auto") == "ours"
    with pytest.raises(ValueError, match="original ETO prompts for sciworld are not in"):
        prompt.resolve_prompts("sciworld", "original")

    # The original's layout: a list of examples, each a list of turns; role keys are unreliable there.
    (tmp_path / "sciworld_inst.txt").write_text("Original instruction.\n")
    (tmp_path / "sciworld_icl.json").write_text(json.dumps([[
        {"role": "user", "content": "Example task."}, {"from": "gpt", "content": "Thought: t\nAction: a"},
        {"role": "user", "content": "Observation: o"}, {"role": "assistant", "content": "Thought: u\nAction: b"}]]))
    messages, task_turn = prompt.build_messages("sciworld", "The task.", 1, "auto")
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert messages[0]["content"] == "Original instruction." and messages[3]["content"] == "Thought: t\nAction: a"
    assert task_turn == 6 and messages[task_turn]["content"] == "The task."
    ours, _ = prompt.build_messages("sciworld", "The task.", 0, "ours")
    assert ours[0]["content"] != "Original instruction."


# ------------------------------------------------------------------------------ published data
def _published(task_id, description):
    """A record as the original ETO published them: its id scheme, its task turn (bare description)."""
    return {"id": task_id, "conversations": [
        {"from": "human", "value": "You are a scientist agent. (published instruction)"}, {"from": "gpt", "value": "OK"},
        {"from": "human", "value": description},
        {"from": "gpt", "value": "Thought: I should look around.\nAction: look around"},
        {"from": "human", "value": "Observation: This room is called the hallway."},
        {"from": "gpt", "value": "Thought: The kitchen has the red box.\nAction: teleport to kitchen"}]}


def test_published_records_map_pair_and_train(tmp_path, tiny_model_path):
    train = SciWorldTask.load_split("train")
    assert "13_0" in {t.task_id for t in train}
    records = [_published("13_0", FIND_NON_LIVING_0), _published("99_5", "Your task is to juggle.")]
    mapping = map_records(SciWorldTask, records, train)
    assert [r["id"] for r in mapping.records] == ["13_0"] and mapping.unmapped == ["99_5"]
    assert mapping.coverage == 0.5 < MIN_COVERAGE

    golden = tmp_path / "sciworld_sft.json"
    golden.write_text(json.dumps(mapping.records))
    assert load_sft_data(str(golden))[0]["id"] == "13_0"
    # Our policy side: a real (scripted, failing) episode of the same task from our env, 1-shot.
    store = EpisodeStore(str(tmp_path / "explored"))
    task = SciWorldTask.make("find-non-living-thing", 0)
    run_tasks([task], lambda: SciWorldEnv(dict(load_config("task", "sciworld"), max_steps={"find-non-living-thing": 3})),
              _Scripted(["Thought: wait.\nAction: wait1"]), store, env_name="sciworld", num_examples=1)
    counts = Counter()
    experts = load_sft_data(str(golden))
    pairs = cp.build_pairs(SciWorldTask, experts, cp.load_episodes([store.folder], counts), counts)
    assert counts["lose"] == 1 and len(pairs) == 1
    assert counts["episodes whose task text differs from the expert's (paired anyway)"] == 0  # same task turn
    assert pairs[0]["prompt"] == records[0]["conversations"][:3]  # the published instruction, no example
    pairs_path = tmp_path / "pairs.json"
    pairs_path.write_text(json.dumps(pairs))
    load_preference_data(str(pairs_path))

    env = dict(os.environ, OMP_NUM_THREADS="1")
    for script, data, extra in (("train.py", golden, []), ("train_dpo.py", pairs_path, ["--beta", "0.1"])):
        out = tmp_path / script
        result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "fastchat", "train", script),
                                 "--model_name_or_path", tiny_model_path, "--data_path", str(data), "--output_dir",
                                 str(out), "--max_steps", "1", "--save_strategy", "no", "--report_to", "none", *extra],
                                cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        assert (out / "eto_training.json").exists()


def test_alfworld_records_map_by_game_file_or_task_text(tmp_path):
    games = AlfWorldTask.load_split("train")[:3]
    by_file = {"id": 0, "game_file": os.path.dirname(games[0].game_file), "conversations": []}
    by_text = {"id": 1, "conversations": [{}, {}, {"from": "human", "value": "You are in a room.\n\nYour task is to: x."}]}
    lost = {"id": 2, "conversations": [{}, {}, {"from": "human", "value": "Nowhere."}]}
    episodes = tmp_path / "expert"
    episodes.mkdir()
    (episodes / f"{games[1].task_id}.json").write_text(json.dumps({
        "meta": {"id": games[1].task_id, "task_turn": 2},
        "conversations": [{}, {}, {"from": "human", "value": "You are in a room.\nYour task is to: x."}]}))
    mapping = map_records(AlfWorldTask, [by_file, by_text, lost], games, task_text_index([str(episodes)]))
    assert [r["id"] for r in mapping.records] == [games[0].task_id, games[1].task_id]
    assert [r["original_id"] for r in mapping.records] == [0, 1] and mapping.by_text == 1
    assert mapping.unmapped == ["2"]


def test_fetch_check_refuses_data_that_does_not_fit_the_split(tmp_path):
    path = tmp_path / "sciworld_sft.json"
    path.write_text(json.dumps([_published("13_0", FIND_NON_LIVING_0), _published("99_5", "x")]))
    with pytest.raises(DataError, match=r"1 of 2 published records \(50%\) map onto train tasks.*under 90%"):
        check_published_file("sciworld", str(path))
    path.write_text(json.dumps([_published("13_0", FIND_NON_LIVING_0)]))
    assert "1 of 1 published records (100%)" in check_published_file("sciworld", str(path))
