"""WebShop in eval_agent: splits, the env's turns, the 1-shot example, the expert through the real
harness, expert SFT data, preference pairs, and a real FastChat worker (tiny model) shopping.

Uses the catalog setup.sh prepares in data/webshop (generated offline, official when online).
"""

import json
import os
import subprocess
import sys

import pytest
from conftest import replay_example

from eval_agent.envs import FORMAT_ERROR, WebShopEnv
from eval_agent.config import load_config
from eval_agent.prompt import load_examples
from eval_agent.tasks import WebShopTask, split_parts
from eval_agent.tasks.webshop import DEFAULT_DATA_DIR, generate_splits
from eto.records import load_preference_data
from eto.records import load_sft_data

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = load_config("task", "webshop")


@pytest.fixture(autouse=True)
def webshop_data():
    if not os.path.isfile(WebShopTask.split_path("test")):
        pytest.fail(f"the WebShop catalog or its splits are missing from {DEFAULT_DATA_DIR}: run `bash setup.sh`",
                    pytrace=False)


@pytest.fixture
def env():
    return WebShopEnv(CONFIG)


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=timeout)


def _act(action):
    return f"Thought: next.\nAction: {action}"


def test_split_sizes_and_files_match_the_catalog():
    splits = {s: WebShopTask.load_split(s) for s in ("train", "test", "test_500")}
    official = json.loads(open(os.path.join(DEFAULT_DATA_DIR, "catalog.json")).read())["source"] == "official"
    # ETO's train list names 1824 goals, one of them twice, and shares 21 with its test list.
    assert {s: len(t) for s, t in splits.items()} == {"train": 1823 if official else 1824, "test": 200,
                                                      "test_500": 500 if official else 476}
    shared = {t.task_id for t in splits["train"]} & {t.task_id for t in splits["test"]}
    assert len(shared) == (21 if official else 0)
    regenerated = generate_splits()
    assert {s: [t.to_dict() for t in ts] for s, ts in regenerated.items()} == \
           {s: [t.to_dict() for t in ts] for s, ts in splits.items()}
    assert {t.category for t in splits["test"]} == {"beauty", "electronics", "fashion", "food", "home"}
    tasks = splits["test"]
    for part_num in (1, 3, 200, 256):
        assert [t.task_id for i in range(part_num) for t in split_parts(tasks, part_num, i)] == [t.task_id for t in tasks]
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        WebShopTask.load_split("dev")


def test_episode_turns_invalid_actions_and_the_step_limit(env):
    task = WebShopTask.load_split("test")[0]
    opening = env.reset(task)
    assert opening.startswith("WebShop [SEP] Instruction: [SEP] ") and opening.endswith(" [SEP] Search")
    observation, state = env.step(_act("click[Buy Now]"))
    assert observation.startswith("Observation:\nInvalid action: there is no 'buy now' to click on this page.")
    assert observation.endswith(opening) and not state.finished
    observation, state = env.step("I will just think about it.")
    assert observation == FORMAT_ERROR
    observation, state = env.step(_act("search[something nice]"))
    assert observation.startswith("Observation:\nInstruction: [SEP] ") and "Page 1 (Total results: " in observation
    for _ in range(7):
        observation, state = env.step(_act("click[Next >]"))
    assert state.finished and state.terminate_reason == "max_steps" and state.steps == 10 and state.reward == 0.0


def test_buying_ends_the_episode_with_the_reward(env):
    task = WebShopTask.load_split("test")[1]
    env.reset(task)
    env.step(_act(f"search[{env.shop.session.goal.query}]"))
    product = env.shop.session.results[0]
    env.step(_act(f"click[{product}]"))
    observation, state = env.step(_act("click[Buy Now]"))
    assert state.finished and 0.0 <= state.reward < 1.0 and not state.success  # no options chosen: not perfect
    assert state.terminate_reason == "purchased" and "Your score (min 0.0, max 1.0)" in observation


def test_icl_example_replays_exactly_and_wins(env):
    (example,) = load_examples("webshop")
    task = next(t for t in WebShopTask.load_split("train") if t.task_id == "270")
    state = replay_example(env, task, example)
    assert state.finished and state.success and state.reward == 1.0


def test_actions_in_the_published_etos_style_work(env):
    """ETO's WebShop data writes searches with a price note and lower-cased clicks."""
    task = next(t for t in WebShopTask.load_split("train") if t.task_id == "270")
    env.reset(task)
    observation, _ = env.step("Thought: search.\nAction: search[high protein bar salted caramel 15 count price < 70.00]")
    assert "b0geg5g4m6" in observation.lower()
    for action in ("click[b0geg5g4m6]", "click[15 count]", "click[salted caramel]"):
        observation, state = env.step(f"Thought: go on.\nAction: {action}")
        assert "Invalid action" not in observation and not state.finished
    observation, state = env.step("Thought: done.\nAction: click[buy now]")
    assert state.finished and state.reward == 1.0


def test_stale_split_file_is_named(env, tmp_path):
    task = WebShopTask(task_id="0", goal_index=0, asin="B000000000", department="beauty")
    with pytest.raises(ValueError, match="split files were made for another catalog"):
        env.reset(task)


def test_expert_through_the_harness_in_parts_with_resume(tmp_path):
    common = ["eval_agent.main", "--agent_config", "expert", "--model_name", "expert", "--exp_config", "webshop",
              "--split", "test", "--max_tasks", "20", "--output_dir", str(tmp_path)]
    first = _run(*common, "--part_num", "2", "--part_idx", "1")
    assert first.returncode == 0, first.stderr[-2000:]
    folder = tmp_path / "expert" / "webshop"
    assert sorted(int(p.stem) for p in folder.glob("[0-9]*.json")) == list(range(10, 20))
    whole = _run(*common)
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert "20 episodes finished (10 this run, 0 with errors" in whole.stdout
    summary = json.loads((folder / "_summary.json").read_text())
    assert summary["average_reward"] >= 0.9 and set(summary["by_group"]) <= {"beauty", "electronics", "fashion",
                                                                              "food", "home"}
    # An episode played on another definition of its task (here: another catalog's product for
    # goal 3) is neither reused nor overwritten: the run stops with one line.
    episode = folder / "3.json"
    record = json.loads(episode.read_text())
    record["meta"]["task"]["asin"] = "B0OTHERCAT"
    episode.write_text(json.dumps(record))
    stale = _run(*common)
    assert stale.returncode != 0 and "was played on another definition of task 3" in stale.stderr
    assert len(stale.stderr.strip().splitlines()) == 1 and json.loads(episode.read_text()) == record


def test_rule_and_random_baselines_play_through_the_harness_as_the_engine_plays_them(tmp_path):
    """The reference rows: WebShop's rule baseline and the random clicker as agents (no model).
    The rule agent's rewards equal eto_webshop.baselines.rule_shopper's on the same goals; the random
    clicker's episodes depend on the goal and seed only (two orders of play give the same ones)."""
    import random

    from eto_webshop.baselines import random_shopper, rule_shopper

    common = ["--exp_config", "webshop", "--split", "test", "--max_tasks", "12", "--num_examples", "0"]
    rule = _run("eval_agent.main", "--agent_config", "rule", "--model_name", "rule", *common, "--output_dir", str(tmp_path))
    assert rule.returncode == 0, rule.stderr[-2000:]
    env = WebShopEnv(CONFIG)
    tasks = WebShopTask.load_tasks("test", CONFIG)[:12]
    played = {t.task_id: json.loads((tmp_path / "rule" / "webshop" / f"{t.task_id}.json").read_text()) for t in tasks}
    assert [played[t.task_id]["meta"]["reward"] for t in tasks] == [rule_shopper(env.shop, t.goal_index) for t in tasks]
    assert all(p["meta"]["steps"] <= 3 for p in played.values())  # search, open the first hit, buy

    runs = []
    for order in ("1", "2"):  # 1 part, then 2 parts played back to front: other orders of play
        out = tmp_path / f"random{order}"
        parts = [["--part_num", "1", "--part_idx", "0"]] if order == "1" else [["--part_num", "2", "--part_idx", "1"],
                                                                                ["--part_num", "2", "--part_idx", "0"]]
        for part in parts:
            result = _run("eval_agent.main", "--agent_config", "random", "--model_name", "random", *common, *part,
                          "--output_dir", str(out))
            assert result.returncode == 0, result.stderr[-2000:]
        runs.append({p.stem: json.loads(p.read_text())["conversations"] for p in (out / "random" / "webshop").glob("[0-9]*.json")})
    assert runs[0] == runs[1] and len(runs[0]) == 12
    assert random_shopper(env.shop, tasks[0].goal_index, random.Random(0)) >= 0.0  # the benchmark's own form still plays

    counter = _run("eval_agent.main", "--agent_config", "rule", "--model_name", "rule", "--exp_config", "counter",
                    "--split", "test", "--output_dir", str(tmp_path))
    assert counter.returncode != 0 and "counter has no baseline 'rule' (its baselines: none)" in counter.stderr
    assert len(counter.stderr.strip().splitlines()) == 1


def test_expert_trajectories_carry_their_reward_and_pair_with_explored_episodes(tmp_path):
    gold = tmp_path / "webshop_sft.json"
    result = _run("eval_agent.expert_trajectories", "--task", "webshop", "--max_tasks", "3", "--output", str(gold),
                  "--episodes_dir", str(tmp_path / "expert"))
    assert result.returncode == 0, result.stderr[-2000:]
    records = load_sft_data(str(gold))
    assert [r["id"] for r in records] == [t.task_id for t in WebShopTask.load_split("train")[:3]]
    for record in records:
        turns = record["conversations"]
        assert record["reward"] >= 0.7 and turns[2]["value"].startswith("WebShop [SEP] Instruction: [SEP] ")
        assert turns[3]["value"].startswith("Thought: ") and "Action: search[" in turns[3]["value"]
        assert turns[-1]["from"] == "gpt" and turns[-1]["value"].endswith("Action: click[Buy Now]")
    # Explored episodes: a worse purchase, a tie, and a better one than an expert record that scored 0.8.
    explored = tmp_path / "explored"
    explored.mkdir()
    for i, path in enumerate(sorted((tmp_path / "expert").glob("[0-9]*.json"))):
        episode = json.loads(path.read_text())
        episode["meta"]["reward"] = (0.4, 1.0, 1.0)[i]
        (explored / path.name).write_text(json.dumps(episode))
    records[2]["reward"] = 0.8
    gold.write_text(json.dumps(records))
    pairs_path = tmp_path / "pairs.json"
    result = subprocess.run([sys.executable, "construct_preference.py", "--task", "webshop", "--golden_traj_path",
                             str(gold), "--output_path", str(pairs_path), "--episodes_dir", str(explored)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "win: 1, tie: 1, lose: 1" in result.stdout
    pairs = {p["id"]: p for p in load_preference_data(str(pairs_path))}
    lose, win = records[0]["id"], records[2]["id"]
    assert set(pairs) == {lose, win}
    assert (pairs[lose]["chosen_reward"], pairs[lose]["rejected_reward"]) == (1.0, 0.4)
    assert (pairs[win]["chosen_reward"], pairs[win]["rejected_reward"]) == (1.0, 0.8)


def test_a_served_model_shops_through_fastchat(tiny_servers, tmp_path):
    """Real controller and worker over HTTP; the tiny random model's replies are gibberish, which
    the env must answer with the format reminder, never crash on."""
    config = tmp_path / "webshop.json"
    config.write_text(json.dumps({"extends": "webshop", "max_steps": 2}))
    result = _run("eval_agent.main", "--agent_config", "fastchat", "--model_name", tiny_servers.model_name,
                  "--exp_config", str(config), "--split", "test", "--max_tasks", "2", "--controller_address",
                  tiny_servers.controller_url, "--output_dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "out" / tiny_servers.model_name / "webshop"
    for task in WebShopTask.load_split("test")[:2]:
        record = json.loads((folder / f"{task.task_id}.json").read_text())
        meta, turns = record["meta"], record["conversations"]
        assert meta["error"] is None and meta["steps"] == 2 and meta["finished"]
        assert turns[meta["task_turn"]]["value"].startswith("WebShop [SEP] Instruction: [SEP] ")
        assert turns[-1]["value"].startswith("Observation:")


def test_missing_catalog_is_a_one_line_error(tmp_path):
    config = tmp_path / "ws.json"
    config.write_text(json.dumps({"extends": "webshop", "data_dir": str(tmp_path / "nowhere")}))
    result = _run("eval_agent.main", "--agent_config", "expert", "--model_name", "expert", "--exp_config", str(config),
                  "--split", "test", "--max_tasks", "1", "--output_dir", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "run `bash setup.sh`" in result.stderr


def test_demo_config_names_a_fixed_subset():
    config = load_config("task", "webshop_demo")
    train, test = WebShopTask.load_tasks("train", config), WebShopTask.load_tasks("test", config)
    assert (len(train), len(test)) == (32, 16) and config["max_steps"] == 10
