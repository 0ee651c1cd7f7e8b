"""The evaluation harness with the real ScienceWorld engine."""

import json
import os
from typing import Dict, List

import pytest
from conftest import replay_example

from eval_agent.agents.base import Agent, Reply
from eval_agent.envs import FORMAT_ERROR, SciWorldEnv, parse_action
from eval_agent.config import load_config
from eval_agent.prompt import build_messages, load_examples
from eval_agent.runner import EpisodeStore, run_tasks
from eval_agent.tasks import SciWorldTask, split_parts

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = load_config("task", "sciworld")


class ScriptedAgent(Agent):
    """Answers from a per-task script of replies, keyed by the task's own turn text."""

    def __init__(self, scripts: Dict[str, List[str]]):
        super().__init__({}, "scripted")
        self.scripts = scripts

    def _attempt(self, messages, attempt):
        task_turn = build_messages("sciworld", "x")[1]
        script = self.scripts[messages[task_turn]["content"]]
        replies_so_far = (len(messages) - task_turn - 1) // 2
        return Reply(script[replies_so_far % len(script)])


class EchoObservationAgent(Agent):
    """Deterministic: the action depends only on the last observation's text."""

    ACTIONS = ["look around", "inventory", "go to kitchen", "open door to outside", "task", "wait1"]

    def __init__(self):
        super().__init__({}, "echo")

    def _attempt(self, messages, attempt):
        index = sum(map(ord, messages[-1]["content"])) % len(self.ACTIONS)
        return Reply(f"Thought: try something.\nAction: {self.ACTIONS[index]}")


def _gold(task: SciWorldTask) -> List[str]:
    from scienceworld import ScienceWorldEnv

    engine = ScienceWorldEnv("", envStepLimit=100_000)
    try:
        engine.load(task.task_name, task.variation, "easy", generateGoldPath=True)
        return engine.get_gold_action_sequence()
    finally:
        engine.close()


@pytest.fixture(scope="module")
def env():
    instance = SciWorldEnv(CONFIG)
    yield instance
    instance.close()


def test_parse_action_first_is_the_originals_rule():
    # "first" (the default): everything after the first "Action:", as the original ETO's envs read it.
    assert parse_action("Thought: go.\nAction: open door to kitchen") == "open door to kitchen"
    assert parse_action("Action: look around\nAction: inventory") == "look around\nAction: inventory"
    assert parse_action("Action:   pick up pot  \nmore text") == "pick up pot  \nmore text"
    for bad in ["", "I will look around", "Action:", "Action:   \n"]:
        assert parse_action(bad) is None


def test_parse_action_last_line_is_the_tolerant_switch():
    assert parse_action("Thought: go.\nAction: open door to kitchen", "last_line") == "open door to kitchen"
    assert parse_action("Action: look around\nAction: inventory", "last_line") == "inventory"
    assert parse_action("Action:   pick up pot  \nmore text", "last_line") == "pick up pot"
    for bad in ["", "I will look around", "Action:", "Action:   \n"]:
        assert parse_action(bad, "last_line") is None
    with pytest.raises(ValueError, match="action_parsing must be one of first, last_line"):
        SciWorldEnv(dict(CONFIG, action_parsing="middle"))


@pytest.mark.parametrize("task_name", ["find-living-thing", "lifespan-longest-lived", "chemistry-mix-paint-secondary-color",
                                       "power-component", "identify-life-stages-1", "test-conductivity"])
def test_gold_replay_reaches_reward_one(task_name, env, tmp_path):
    task = next(t for t in SciWorldTask.load_split("dev") if t.task_name == task_name)
    gold = _gold(task)
    task_text = env.reset(task)
    agent = ScriptedAgent({task_text: [f"Thought: follow the expert.\nAction: {a}" for a in gold]})
    config = dict(CONFIG, max_steps={**CONFIG["max_steps"], task_name: len(gold) + 5})
    store = EpisodeStore(str(tmp_path))
    [record] = run_tasks([task], lambda: SciWorldEnv(config), agent, store, env_name="sciworld")
    meta = record["meta"]
    assert (meta["reward"], meta["success"], meta["terminate_reason"]) == (1.0, True, "success")
    assert meta["steps"] <= len(gold)  # some gold paths end with a spare "wait1"
    # The reward after each step: partial credit along the way, the final reward at the end.
    assert len(meta["reward_by_step"]) == meta["steps"] and meta["reward_by_step"][-1] == 1.0
    assert 0.0 < max(meta["reward_by_step"][:-1], default=0.5) or meta["steps"] == 1
    saved = json.loads(open(store.path(task.task_id)).read())
    assert saved == record and saved["conversations"][meta["task_turn"]]["value"] == task_text


def test_the_engine_jvm_runs_with_the_short_lived_options(env):
    from eval_agent.envs.sciworld_env import ENGINE_JAVA_OPTIONS

    env.reset(SciWorldTask.make("find-plant", 0))
    command = env.engine._gateway.java_process.args
    assert all(option in command for option in ENGINE_JAVA_OPTIONS), command


def test_malformed_and_nonsense_outputs_never_crash(env, tmp_path):
    task = SciWorldTask.make("find-plant", 0)
    replies = ["", "no action here", "Action:", "Action: fly to the moon", "Action: focus on", "Action: 999",
               "Thought: x\nAction: " + "x" * 3000, "Action: go to \u2603 \x00", "Action: look around"]
    agent = ScriptedAgent({env.reset(task): replies})
    config = dict(CONFIG, max_steps={**CONFIG["max_steps"], "find-plant": len(replies)})
    [record] = run_tasks([task], lambda: SciWorldEnv(config), agent, EpisodeStore(str(tmp_path)), env_name="sciworld")
    meta, turns = record["meta"], record["conversations"]
    assert meta["error"] is None and meta["steps"] == len(replies) and meta["terminate_reason"] == "max_steps"
    observations = [t["value"] for t in turns[meta["task_turn"] + 1:] if t["from"] == "human"]
    assert observations[:3] == [FORMAT_ERROR] * 3
    assert all(o.startswith("Observation: ") for o in observations)


def test_wrong_focus_fails_the_task(env, tmp_path):
    task = SciWorldTask.make("find-living-thing", 2)
    agent = ScriptedAgent({env.reset(task): ["Thought: focus.\nAction: focus on air"]})
    [record] = run_tasks([task], lambda: SciWorldEnv(CONFIG), agent, EpisodeStore(str(tmp_path)), env_name="sciworld")
    assert record["meta"]["terminate_reason"] == "task_failed" and not record["meta"]["success"]
    assert record["meta"]["steps"] == 1


def test_icl_example_is_a_real_expert_episode(env):
    [example] = load_examples("sciworld")
    task = SciWorldTask.make("find-living-thing", 2)
    state = replay_example(env, task, example)
    assert state.success and state.reward == 1.0


def test_split_sizes_and_parts_cover_every_task_once():
    sizes = {s: len(SciWorldTask.load_split(s)) for s in ("train", "dev", "test")}
    assert sizes == {"train": 1483, "dev": 194, "test": 211}  # the original ETO's lists
    tasks = SciWorldTask.load_split("test")
    assert len({t.task_name for t in tasks}) == 24
    for part_num in (1, 3, 7, 211, 300):
        parts = [split_parts(tasks, part_num, i) for i in range(part_num)]
        flat = [t.task_id for p in parts for t in p]
        assert sorted(flat) == sorted(t.task_id for t in tasks) and len(flat) == len(set(flat))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(ValueError):
        split_parts(tasks, 2, 2)


def test_concurrency_gives_the_same_results_as_sequential(tmp_path):
    short = ("find-animal", "find-plant", "lifespan-longest-lived", "lifespan-shortest-lived", "find-living-thing")
    tasks = [next(t for t in SciWorldTask.load_split("dev") if t.task_name == name) for name in short]
    results = {}
    for concurrency in (1, 4):
        store = EpisodeStore(str(tmp_path / f"c{concurrency}"))
        run_tasks(tasks, lambda: SciWorldEnv(CONFIG), EchoObservationAgent(), store, env_name="sciworld",
                  concurrency=concurrency)
        results[concurrency] = {t.task_id: _without_timing(store.load(t.task_id)) for t in tasks}
    assert results[1] == results[4]


def _without_timing(record):
    """The record without its timings, and with each observation's lines in a fixed order:
    ScienceWorld may list a room's objects in another order from one engine to the next
    (SciWorldEnv.same_observation), which the echo agent's choice does not depend on."""
    record["meta"].pop("timing")
    for turn in record["conversations"]:
        if turn["from"] == "human":
            turn["value"] = "\n".join(sorted(turn["value"].splitlines()))
    return record


def test_a_derived_split_holds_out_train_tasks_for_pilot_runs():
    """The evidence run's settings were chosen on its "heldout" split: 48 train tasks it does not
    train on (2 per type), never on a test split; seen and unseen test tasks are 2 per type too."""
    config = load_config("task", "sciworld_evidence")
    train, heldout = SciWorldTask.load_tasks("train", config), SciWorldTask.load_tasks("heldout", config)
    assert len(train) == len(heldout) == 48 and not {t.task_id for t in train} & {t.task_id for t in heldout}
    assert heldout == SciWorldTask.load_split("train")[48:96]
    for split in ("train", "heldout", "dev", "test"):
        tasks = SciWorldTask.load_tasks(split, config)
        assert len(tasks) == 48 and all(sum(t.task_name == name for t in tasks) == 2 for name in {t.task_name for t in tasks})
        assert len({t.task_name for t in tasks}) == 24, split
    # Its episodes stop at 30 steps at most (pilots.md); the other types keep the protocol's limits.
    assert config["max_steps"] == {name: min(limit, 30) for name, limit in load_config("task", "sciworld")["max_steps"].items()}
    with pytest.raises(ValueError, match="comes from unknown split 'nope'"):
        SciWorldTask.load_tasks("x", {"derived_splits": {"x": {"from": "nope", "count": 1}}})
    with pytest.raises(ValueError, match='needs "from"'):
        SciWorldTask.load_tasks("x", {"derived_splits": {"x": {"skip": 1}}})
