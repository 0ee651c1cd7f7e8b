"""ALFWorld with the real TextWorld engine on the 2.1.1 games that setup.sh unpacks."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import replay_example

from eval_agent.envs import FORMAT_ERROR, AlfWorldEnv
from eval_agent.experts.alfworld import expert_thought
from eval_agent.config import load_config
from eval_agent.prompt import load_examples
from eval_agent.tasks import AlfWorldTask, split_parts
from eval_agent.tasks.alfworld import DEFAULT_DATA_DIR, generate_splits

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = load_config("task", "alfworld")
TYPES = {"look_at_obj_in_light", "pick_and_place_simple", "pick_clean_then_place_in_recep",
         "pick_cool_then_place_in_recep", "pick_heat_then_place_in_recep", "pick_two_obj_and_place"}



@pytest.fixture(autouse=True)
def alfworld_games():
    if not os.path.isdir(os.path.join(DEFAULT_DATA_DIR, "json_2.1.1")):
        pytest.fail(f"the ALFWorld games are missing from {DEFAULT_DATA_DIR}: run `bash setup.sh` "
                    "(it unpacks them from ../shared/data/alfworld, or downloads them when online)", pytrace=False)


def _train_task(task_type="pick_and_place_simple"):
    return next(t for t in AlfWorldTask.load_split("train") if t.task_type == task_type)


def _walkthrough(task, data_dir=DEFAULT_DATA_DIR):
    with open(os.path.join(data_dir, os.path.dirname(task.game_file), "gt_traj.json"), encoding="utf-8") as f:
        return [t["value"] for t in json.load(f) if t["from"] == "gpt"]


def _act(action):
    return f"Thought: next.\nAction: {action}"


@pytest.fixture
def env():
    instance = AlfWorldEnv(CONFIG)
    yield instance
    instance.close()


def test_split_files_are_the_solvable_games_and_match_the_data():
    splits = {s: AlfWorldTask.load_split(s) for s in ("train", "dev", "test")}
    assert {s: len(t) for s, t in splits.items()} == {"train": 3554, "dev": 140, "test": 134}
    for split, tasks in splits.items():
        assert {t.category for t in tasks} == TYPES
        assert {t.category for t in tasks[:6]} == TYPES  # round-robin: the first six cover every type
        assert len({t.task_id for t in tasks}) == len(tasks)
    assert all("/valid_seen/" in t.game_file for t in splits["dev"])
    assert all("/valid_unseen/" in t.game_file for t in splits["test"])
    regenerated = generate_splits()
    assert {s: [t.to_dict() for t in ts] for s, ts in regenerated.items()} == \
           {s: [t.to_dict() for t in ts] for s, ts in splits.items()}


def test_parts_cover_every_game_once():
    tasks = AlfWorldTask.load_split("test")
    for part_num in (1, 4, 134, 200):
        flat = [t.task_id for i in range(part_num) for t in split_parts(tasks, part_num, i)]
        assert flat == [t.task_id for t in tasks]


def test_episode_text_and_walkthrough_wins(env):
    task = _train_task()
    opening = env.reset(task)
    assert opening.startswith("You are in the middle of a room.") and "Welcome to TextWorld" not in opening
    # The room on one line, the task on the next: the original loader's single newline.
    assert len(opening.splitlines()) == 2 and opening.splitlines()[1].startswith("Your task is to: ")
    actions = _walkthrough(task)
    for action in actions:
        observation, state = env.step(_act(action))
        assert observation.startswith("Observation: ") and "You arrive at loc" not in observation
    assert state.finished and state.success and state.reward == 1.0 and state.steps == len(actions)
    assert state.terminate_reason == "success"


def test_invalid_and_nonsense_actions_get_the_engine_feedback(env):
    task = _train_task()
    env.reset(task)
    for reply in (_act("dance wildly"), _act("take the moon from the sky"), _act("x" * 5000), _act("go to ☃ 1"),
                  _act("put")):
        observation, state = env.step(reply)
        assert observation == "Observation: Nothing happens." and not state.finished
    observation, state = env.step("I would rather not say.")
    assert observation == FORMAT_ERROR and state.steps == 6
    # Case, spacing and a final full stop do not matter.
    first = _walkthrough(task)[0]
    observation, _ = env.step(_act("  " + first.upper() + ". "))
    assert observation != "Observation: Nothing happens."


def test_step_limit_ends_the_episode_with_no_reward(env):
    env.reset(_train_task())
    for _ in range(CONFIG["max_steps"]):
        _, state = env.step(_act("look"))
    assert state.finished and state.terminate_reason == "max_steps" and state.reward == 0.0 and not state.success
    assert state.steps == 40


def test_put_forms_and_the_move_to_grammar_of_newer_games(tmp_path):
    """A copy of a 2.1.1 game rewritten to the newer grammar ("move X to Y"): the same walkthrough,
    written in the 2.1.1 form, still wins, and so do the "put X on Y" variants."""
    task = _train_task()
    game_dir = os.path.join(str(tmp_path), os.path.dirname(task.game_file))
    shutil.copytree(os.path.join(DEFAULT_DATA_DIR, os.path.dirname(task.game_file)), game_dir)
    with open(os.path.join(game_dir, "game.tw-pddl"), encoding="utf-8") as f:
        game = json.load(f)
    assert 'template :: "put {o} in/on {r}";' in game["grammar"]
    game["grammar"] = game["grammar"].replace('template :: "put {o} in/on {r}";', 'template :: "move {o} to {r}";')
    with open(os.path.join(game_dir, "game.tw-pddl"), "w", encoding="utf-8") as f:
        json.dump(game, f)
    actions = _walkthrough(task)
    assert actions[-1].startswith("put ") and " in/on " in actions[-1]
    variants = [actions[-1], actions[-1].replace(" in/on ", " on "), actions[-1].replace("put ", "move ").replace(" in/on ", " to ")]
    for data_dir in (DEFAULT_DATA_DIR, str(tmp_path)):
        for final in variants:
            env = AlfWorldEnv({**CONFIG, "data_dir": data_dir})
            try:
                env.reset(task)
                for action in actions[:-1] + [final]:
                    _, state = env.step(_act(action))
                assert state.success, (data_dir, final)
            finally:
                env.close()


def test_icl_example_is_a_real_winning_episode(env):
    [example] = load_examples("alfworld")
    game = "json_2.1.1/train/pick_cool_then_place_in_recep-Apple-None-GarbageCan-2/trial_T20190906_195837_992466/game.tw-pddl"
    task = AlfWorldTask(task_id="example", game_file=game, task_type="pick_cool_then_place_in_recep")
    state = replay_example(env, task, example)
    assert state.success
    test_games = {t.game_file for s in ("dev", "test") for t in AlfWorldTask.load_split(s)}
    assert game not in test_games


def test_expert_thoughts_follow_the_walkthrough():
    goal = "Your task is to: put a clean apple in diningtable."
    actions = ["go to microwave 1", "open microwave 1", "take apple 1 from microwave 1", "go to sinkbasin 1",
               "clean apple 1 with sinkbasin 1", "go to diningtable 1", "put apple 1 in/on diningtable 1"]
    thoughts = [expert_thought(goal, actions, i) for i in range(len(actions))]
    assert thoughts[0] == "My task is to put a clean apple in diningtable. I will go to the microwave 1: an apple may be there."
    assert "take the apple 1" in thoughts[2]
    assert thoughts[3] == "I will go to the sinkbasin 1: I can wash the apple there."
    assert "that is where the apple goes" in thoughts[5] and "in/on the diningtable 1" in thoughts[6]
    assert expert_thought(goal, ["take cd 1 from desk 1", "use desklamp 1"], 1).startswith("I have the cd;")


def _run(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)


def test_expert_wins_every_task_type_through_the_harness_in_parts_with_resume(tmp_path):
    """The walkthrough expert plays the first 6 train games (one per type) via eval_agent.main,
    split into 2 parts; then the whole split resumes without replaying anything."""
    common = ["eval_agent.main", "--agent_config", "expert", "--model_name", "expert", "--exp_config", "alfworld",
              "--split", "train", "--max_tasks", "6", "--output_dir", str(tmp_path)]
    first = _run(*common, "--part_num", "2", "--part_idx", "0")
    assert first.returncode == 0, first.stderr[-2000:]
    folder = tmp_path / "expert" / "alfworld"
    assert len(list(folder.glob("trial_*.json"))) == 3
    whole = _run(*common)
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert "6 episodes finished (3 this run, 0 with errors" in whole.stdout
    assert "average reward 1.0000 | success rate 1.0000" in whole.stdout
    with open(folder / "_summary.json", encoding="utf-8") as f:
        assert set(json.load(f)["by_group"]) == TYPES
    episodes = [json.loads(p.read_text()) for p in folder.glob("trial_*.json")]
    assert {e["meta"]["id"] for e in episodes} == {t.task_id for t in AlfWorldTask.load_split("train")[:6]}
    assert all(e["meta"]["success"] and e["meta"]["reward"] == 1.0 for e in episodes)
    again = _run(*common)
    assert "(0 this run" in again.stdout


def test_games_load_and_play_concurrently(tmp_path):
    """Episodes in flight at once (the vLLM default is 16) each load and play their own game; the
    TextWorld engine must not crash when several games load in parallel threads."""
    result = _run("eval_agent.main", "--agent_config", "expert", "--model_name", "expert", "--exp_config", "alfworld",
                  "--split", "train", "--max_tasks", "8", "--concurrency", "8", "--output_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "8 episodes finished (8 this run, 0 with errors" in result.stdout
    assert "average reward 1.0000 | success rate 1.0000" in result.stdout


def test_expert_trajectories_become_sft_data(tmp_path):
    output = tmp_path / "alfworld_sft.json"
    result = _run("eval_agent.expert_trajectories", "--task", "alfworld", "--max_tasks", "2", "--output", str(output),
                  "--episodes_dir", str(tmp_path / "episodes"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "kept 2 of 2 episodes" in result.stdout
    records = json.loads(output.read_text())
    assert [r["id"] for r in records] == [t.task_id for t in AlfWorldTask.load_split("train")[:2]]
    for record in records:
        turns = record["conversations"]
        assert turns[2]["value"].startswith("You are in the middle of a room.") and turns[-1]["from"] == "gpt"
        assert turns[3]["value"].startswith("Thought: My task is to ")


def test_missing_game_is_a_one_line_error(tmp_path):
    config = tmp_path / "alf.json"
    config.write_text(json.dumps({"extends": "alfworld", "data_dir": str(tmp_path / "nowhere")}))
    result = _run("eval_agent.main", "--agent_config", "expert", "--model_name", "expert", "--exp_config", str(config),
                  "--split", "train", "--max_tasks", "1", "--output_dir", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "the ALFWorld games are missing from" in result.stderr and "run `bash setup.sh`" in result.stderr


def test_demo_config_names_a_fixed_subset():
    config = load_config("task", "alfworld_demo")
    train, test = AlfWorldTask.load_tasks("train", config), AlfWorldTask.load_tasks("test", config)
    assert (len(train), len(test)) == (12, 6) and config["max_steps"] == 20
    assert {t.task_type for t in train + test} == {"pick_and_place_simple", "look_at_obj_in_light"}
