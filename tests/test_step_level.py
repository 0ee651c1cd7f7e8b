"""Step-level exploration and pairs (the paper's step-level contrast): expert prefixes replayed
in the real environments, and the pairs built from what the agent did next.

Each environment's own expert plays the first demo train task (real ScienceWorld, TextWorld
and WebShop engines); its episode becomes an expert record as eval_agent.expert_trajectories
writes them. A fresh environment then replays a prefix of it, and a scripted agent (one fixed
reply, then it stops) takes over.
"""

import json
import subprocess
import sys

import pytest

from eto.construct.preference import make_step_pair
from eval_agent.agents.base import Agent, EndEpisode, Reply
from eval_agent.agents.expert_agent import ExpertAgent
from eval_agent.config import load_task_config
from eval_agent.prefixes import choose_step, expert_observations, expert_replies, load_prefixes
from eval_agent.registry import ENVS, TASKS
from eval_agent.runner import run_episode
from eto.records import PROMPT_TURNS, end_on_agent_turn, load_preference_data

from conftest import REPO_ROOT

AGENT_REPLY = "Thought: I am not sure what to do.\nAction: inventory"


class OneReplyAgent(Agent):
    """Gives one fixed reply, then ends the episode."""

    def __init__(self):
        super().__init__({}, "scripted")
        self.replied = False

    def _attempt(self, messages, attempt):
        if self.replied:
            raise EndEpisode("scripted agent done")
        self.replied = True
        return Reply(AGENT_REPLY)


def _play(env_name, agent, prefix=None, expert=False):
    config, env_name = load_task_config(f"{env_name}_demo", expert=expert)
    task = TASKS[env_name].load_tasks("train", config)[0]
    env = ENVS[env_name](config)
    try:
        return run_episode(task, env, agent.bind(env), env_name, num_examples=0, prompts="ours", prefix=prefix)
    finally:
        env.close()


@pytest.fixture(scope="module", params=["sciworld", "alfworld", "webshop"])
def expert_record(request):
    """(env name, the first demo train task's expert record in the SFT layout, with its reward)."""
    episode = _play(request.param, ExpertAgent(), expert=True)
    assert episode["meta"]["reward"] > 0 and episode["meta"]["steps"] >= 3
    record = {"id": episode["meta"]["id"], "conversations": end_on_agent_turn(episode["conversations"]),
              "reward": episode["meta"]["reward"]}
    return request.param, record


@pytest.fixture(scope="module")
def replayed(expert_record):
    """The expert record, and an episode that replayed its first half before the agent took over."""
    env_name, record = expert_record
    prefix = expert_replies(record)[:len(expert_replies(record)) // 2 + 1]
    return env_name, record, prefix, _play(env_name, OneReplyAgent(), prefix=prefix)


def test_a_replayed_expert_prefix_reaches_the_experts_observations(replayed):
    env_name, record, prefix, episode = replayed
    assert episode["meta"]["prefix_steps"] == len(prefix)
    assert episode["conversations"][:PROMPT_TURNS] == record["conversations"][:PROMPT_TURNS]
    # A fresh environment, given the expert's replies, answers with the expert's observations
    # (ScienceWorld's may list a room's objects in another order: same_observation allows that).
    turns = episode["conversations"][PROMPT_TURNS:]
    assert [t["value"] for t in turns[0:2 * len(prefix):2]] == prefix
    observations = [t["value"] for t in turns[1:2 * len(prefix):2]]
    assert all(map(ENVS[env_name].same_observation, observations, expert_observations(record)[:len(prefix)]))
    assert turns[2 * len(prefix)] == {"from": "gpt", "value": AGENT_REPLY}  # the agent's turn follows the prefix
    assert episode["meta"]["steps"] == len(prefix) + 1


def test_a_step_level_pair_is_one_action_each_after_the_expert_prefix(replayed):
    env_name, record, prefix, episode = replayed
    task_cls = TASKS[env_name]
    outcome, pair = make_step_pair(task_cls, record, episode, ENVS[env_name].same_observation)
    assert outcome == "lose"  # the agent gave up after one reply: below the expert's reward
    assert pair["id"] == f"{record['id']}@step{len(prefix) + 1}"
    assert pair["prompt"] == record["conversations"][:PROMPT_TURNS + 2 * len(prefix)]
    assert pair["prompt"][-1]["from"] == "human"
    assert pair["chosen"] == [{"from": "gpt", "value": expert_replies(record)[len(prefix)]}]
    assert pair["rejected"] == [{"from": "gpt", "value": AGENT_REPLY}]
    assert pair["chosen_reward"] == (record["reward"] if task_cls.expert_reward_field else 1.0)
    # A replay that met other observations than the expert's gives no pair.
    altered = json.loads(json.dumps(episode))
    altered["conversations"][PROMPT_TURNS + 1]["value"] += " (something else)"
    assert make_step_pair(task_cls, record, altered, ENVS[env_name].same_observation) == (
        "step-level replays that did not reproduce the expert's observations", None)


def test_sciworld_observations_are_the_same_whatever_order_a_room_lists_its_objects_in():
    same = ENVS["sciworld"].same_observation
    room = "Observation: This room is called the art studio. In it, you see: \n\tthe agent\n\ta wood cup (containing {})\n\ta wood cup (containing {})"
    assert same(room.format("red paint", "blue paint"), room.format("blue paint", "red paint"))
    assert not same(room.format("red paint", "blue paint"), room.format("red paint", "yellow paint"))
    assert not ENVS["webshop"].same_observation("Observation: a b", "Observation: b a")  # exact elsewhere


def test_the_step_is_drawn_per_task_from_the_seed_and_covers_every_step(tmp_path):
    draws = [choose_step(f"task{i}", 5, seed=0) for i in range(400)]
    assert set(draws) == {1, 2, 3, 4, 5}
    assert draws == [choose_step(f"task{i}", 5, seed=0) for i in range(400)]  # same seed, same steps
    assert draws != [choose_step(f"task{i}", 5, seed=1) for i in range(400)]
    turns = [{"from": "human", "value": "instruction"}, {"from": "gpt", "value": "OK"}, {"from": "human", "value": "task"}]
    for k in range(3):
        turns += [{"from": "gpt", "value": f"Action: a{k}"}, {"from": "human", "value": f"Observation: o{k}"}]
    path = tmp_path / "sft.json"
    path.write_text(json.dumps([{"id": "t1", "conversations": turns[:-1]}]))
    prefix = load_prefixes(str(path), TASKS["sciworld"], seed=0)["t1"]
    assert prefix == ["Action: a0", "Action: a1", "Action: a2"][:choose_step("t1", 3, seed=0) - 1]


def test_construct_preference_mixes_trajectory_and_step_pairs(tmp_path):
    """The CLI on hand-made records: a trajectory-level loss and a step-level win give 2 pairs."""
    head = [{"from": "human", "value": "instruction"}, {"from": "gpt", "value": "OK"}, {"from": "human", "value": "task"}]
    expert = head + [{"from": "gpt", "value": "Action: a0"}, {"from": "human", "value": "Observation: o0"},
                     {"from": "gpt", "value": "Action: a1"}]
    (tmp_path / "sft.json").write_text(json.dumps([{"id": "t1", "conversations": expert}]))
    meta = {"id": "t1", "task_turn": 2, "error": None, "success": False}
    traj, step = tmp_path / "traj", tmp_path / "step"
    traj.mkdir(), step.mkdir()
    (traj / "t1.json").write_text(json.dumps({"meta": dict(meta, reward=0.0), "conversations": head + [
        {"from": "gpt", "value": "Action: b0"}, {"from": "human", "value": "Observation: nothing"}]}))
    (step / "t1.json").write_text(json.dumps({"meta": dict(meta, reward=1.0, prefix_steps=1), "conversations": expert[:5] + [
        {"from": "gpt", "value": "Action: better"}, {"from": "human", "value": "Observation: done"}]}))
    def construct():
        return subprocess.run([sys.executable, "construct_preference.py", "--task", "sciworld", "--golden_traj_path",
                               str(tmp_path / "sft.json"), "--output_path", str(tmp_path / "pm.json"),
                               "--episodes_dir", str(traj), "--step_episodes_dir", str(step)],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)

    # The expert's reward here is 1.0 (ScienceWorld); the step-level agent matched it: a tie.
    result = construct()
    assert result.returncode == 0, result.stderr
    assert "step-level win: 0, tie: 1, lose: 0" in result.stdout
    assert [p["id"] for p in load_preference_data(str(tmp_path / "pm.json"))] == ["t1"]
    (step / "t1.json").write_text(json.dumps({"meta": dict(meta, reward=0.5, prefix_steps=1), "conversations": expert[:5] + [
        {"from": "gpt", "value": "Action: worse"}, {"from": "human", "value": "Observation: meh"}]}))
    result = construct()
    assert result.returncode == 0, result.stderr
    assert "2 pairs (1 trajectory-level, 1 step-level)" in result.stdout
    pairs = load_preference_data(str(tmp_path / "pm.json"))
    assert [p["id"] for p in pairs] == ["t1", "t1@step2"]
    assert pairs[1]["prompt"] == expert[:5] and pairs[1]["chosen"] == [expert[5]]
    assert pairs[1]["rejected"] == [{"from": "gpt", "value": "Action: worse"}]


def test_rewards_per_step_are_backfilled_by_replaying_an_episode(replayed, tmp_path):
    """Episodes saved before rewards per step were recorded get them from a replay of their replies."""
    env_name, _, _, episode = replayed
    old = json.loads(json.dumps(episode))
    del old["meta"]["reward_by_step"]
    (tmp_path / "ep.json").write_text(json.dumps(old))
    wrong = json.loads(json.dumps(old))
    wrong["meta"]["id"], wrong["meta"]["reward"] = "wrong", old["meta"]["reward"] + 0.5
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    result = subprocess.run([sys.executable, "scripts/backfill_reward_by_step.py", "--task", f"{env_name}_demo",
                             str(tmp_path)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "1 filled" in result.stdout and "1 did not replay to the recorded reward" in result.stdout
    assert json.loads((tmp_path / "ep.json").read_text())["meta"]["reward_by_step"] == episode["meta"]["reward_by_step"]
    assert "reward_by_step" not in json.loads((tmp_path / "wrong.json").read_text())["meta"]  # left as it was
