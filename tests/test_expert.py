"""Expert trajectories regenerated offline from ScienceWorld's gold paths (real engine)."""

import json
import os
import subprocess
import sys

import pytest

from eval_agent.agents.base import Agent, Reply
from eval_agent.envs import SciWorldEnv, parse_action
from eval_agent.experts.sciworld import expert_thought
from eval_agent.config import load_config
from eval_agent.prompt import build_messages, load_instruction
from eval_agent.runner import EpisodeStore, run_tasks
from eval_agent.tasks import SciWorldTask
from eto.records import load_sft_data

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_TASKS = 3  # the first train tasks: boil, change-the-state-of-matter-of, chemistry-mix


def _expert(*args):
    return subprocess.run([sys.executable, "-m", "eval_agent.expert_trajectories", "--task", "sciworld",
                           "--split", "train", *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("expert")
    output, episodes = str(folder / "sciworld_sft.json"), str(folder / "episodes")
    result = _expert("--max_tasks", str(NUM_TASKS), "--output", output, "--episodes_dir", episodes)
    assert result.returncode == 0, result.stderr[-3000:]
    return output, episodes, result


def test_expert_episodes_become_sft_data_in_the_evaluation_layout(generated):
    output, _, result = generated
    assert f"kept {NUM_TASKS} of {NUM_TASKS} episodes" in result.stdout and "0 failed" in result.stdout
    records = load_sft_data(output)
    tasks = SciWorldTask.load_split("train")[:NUM_TASKS]
    assert [r["id"] for r in records] == [t.task_id for t in tasks]
    for record in records:
        turns = record["conversations"]
        assert turns[0] == {"from": "human", "value": load_instruction("sciworld")}
        assert turns[1] == {"from": "gpt", "value": "OK"}
        # The original's task turn: the description alone, no header, no observation.
        assert turns[2]["value"].startswith("Your task is to") and "Observation:" not in turns[2]["value"]
        assert parse_action(turns[3]["value"]) == "look around"  # so the expert first looks
        assert turns[-1]["from"] == "gpt"
        for turn in turns[3:]:
            if turn["from"] == "gpt":
                assert turn["value"].startswith("Thought: ") and parse_action(turn["value"])
            else:
                assert turn["value"].startswith("Observation: ")
    with open(output[:-5] + ".report.json", encoding="utf-8") as f:
        report = json.load(f)
    assert report["n_kept"] == NUM_TASKS and report["failures"] == []


def test_rerun_resumes_and_output_is_deterministic(generated, tmp_path):
    output, episodes, _ = generated
    with open(output, "rb") as f:
        first = f.read()
    again = _expert("--max_tasks", str(NUM_TASKS), "--output", output, "--episodes_dir", episodes)
    assert again.returncode == 0 and "(0 played this run" in again.stdout
    with open(output, "rb") as f:
        assert f.read() == first
    # A fresh run (new engines, nothing saved) writes the same episode.
    fresh = _expert("--max_tasks", "1", "--output", str(tmp_path / "one.json"), "--episodes_dir", str(tmp_path / "ep"))
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert load_sft_data(str(tmp_path / "one.json"))[0] == load_sft_data(output)[0]


class ReplayAgent(Agent):
    """Replays the agent turns of SFT records, keyed by the task turn's text."""

    def __init__(self, records):
        super().__init__({}, "replay")
        self.replies = {r["conversations"][2]["value"]: [t["value"] for t in r["conversations"][3::2]] for r in records}

    def _attempt(self, messages, attempt):
        task_turn = build_messages("sciworld", "", num_examples=1)[1]  # after the in-context example
        script = self.replies[messages[task_turn]["content"]]
        return Reply(script[(len(messages) - task_turn - 1) // 2])


def test_regenerated_episodes_replay_to_full_reward_through_the_eval_harness(generated, tmp_path):
    output, _, _ = generated
    config = load_config("task", "sciworld")  # the evaluation config: step limits, one in-context example
    tasks = SciWorldTask.load_split("train")[:NUM_TASKS]
    records = run_tasks(tasks, lambda: SciWorldEnv(config), ReplayAgent(load_sft_data(output)),
                        EpisodeStore(str(tmp_path / "replay")), env_name="sciworld", num_examples=1)
    assert sorted((r["meta"]["id"], r["meta"]["reward"], r["meta"]["success"]) for r in records) == sorted(
        (t.task_id, 1.0, True) for t in tasks)


def test_published_data_is_not_overwritten(tmp_path):
    published = tmp_path / "sciworld_sft.json"
    published.write_text("[]")
    result = _expert("--max_tasks", "1", "--output", str(published), "--episodes_dir", str(tmp_path / "ep"))
    assert result.returncode == 2 and published.read_text() == "[]"
    assert result.stderr.strip().startswith("error:") and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ep").exists()


@pytest.mark.parametrize("action, expected", [
    ("open door to kitchen", "get through the door to the kitchen"),
    ("pick up thermometer", "I need the thermometer with me"),
    ("pick up metal pot", "The task is about the metal pot"),
    ("focus on substance in metal pot", "focus on"),
    ("move metal pot to stove", "the metal pot should go to the stove"),
    ("use thermometer in inventory on substance in metal pot", "measure the temperature of the substance in metal pot"),
    ("connect battery anode to black wire terminal 1", "connect the battery anode to the black wire terminal 1"),
    ("pour cup containing blue paint in art studio in jug", "pour the cup containing blue paint in art studio into the jug"),
    ("wait1", "wait"),
    ("0", "the first choice"),
])
def test_expert_thoughts_explain_the_action(action, expected):
    goal = "Your task is to boil water in the metal pot. First, focus on the substance."
    assert expected in expert_thought(goal, action)
    assert expert_thought(goal, action, first=True).startswith("My task is to boil water in the metal pot. ")


def test_expert_agent_plays_held_out_tasks_through_eval_main(tmp_path):
    result = subprocess.run([sys.executable, "-m", "eval_agent.main", "--agent_config", "expert", "--model_name", "expert",
                             "--exp_config", "sciworld", "--split", "test", "--max_tasks", "2", "--output_dir", str(tmp_path),
                             "--num_examples", "0"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    with open(tmp_path / "expert" / "sciworld" / "_summary.json", encoding="utf-8") as f:
        summary = json.load(f)
    assert summary["n"] == 2 and summary["average_reward"] == 1.0 and summary["success_rate"] == 1.0
    with open(tmp_path / "expert" / "sciworld" / "0_21.json", encoding="utf-8") as f:  # boil, variation 21
        assert json.load(f)["meta"]["task_turn"] == 2  # no in-context example: the SFT layout
