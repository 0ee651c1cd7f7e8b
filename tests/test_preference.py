"""construct_preference.py: the original ETO's pairing rules, on hand-made episode sets."""

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass

import pytest

import eto.construct.preference as cp
from eval_agent.tasks.alfworld import AlfWorldTask
from eval_agent.tasks.base import Task
from eval_agent.tasks.sciworld import SciWorldTask
from eto.records import load_preference_data

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTRUCTION = [{"from": "human", "value": "You are an agent."}, {"from": "gpt", "value": "OK"}]
ICL = [{"from": "human", "value": "Example task"}, {"from": "gpt", "value": "Thought: x\nAction: y"}]


def _turns(prefix, n_actions, final_observation=True):
    """n agent turns with observations between them (and after the last one if asked)."""
    turns = []
    for k in range(n_actions):
        turns.append({"from": "gpt", "value": f"Thought: {prefix} {k}\nAction: {prefix} {k}"})
        if k < n_actions - 1 or final_observation:
            turns.append({"from": "human", "value": f"Observation: after {prefix} {k}"})
    return turns


def _expert(task_id, n_actions, **extra):
    return {"id": task_id, "conversations": INSTRUCTION + [{"from": "human", "value": f"Task {task_id}"}]
            + _turns("expert", n_actions, final_observation=False), **extra}


def _episode(task_id, reward, n_actions, icl=False, success=None, error=None):
    opening = INSTRUCTION + (ICL if icl else [])
    return {"meta": {"id": task_id, "reward": reward, "success": reward >= 1.0 if success is None else success,
                     "error": error, "task_turn": len(opening), "steps": n_actions},
            "conversations": opening + [{"from": "human", "value": f"Task {task_id}"}] + _turns("agent", n_actions)}


def _build(task_cls, experts, episodes):
    counts = Counter()
    pairs = cp.build_pairs(task_cls, experts, {e["meta"]["id"]: e for e in episodes}, counts)
    return {p["id"]: p for p in pairs}, counts


def test_failure_gives_expert_over_agent_cut_to_expert_length_plus_five():
    pairs, counts = _build(SciWorldTask, [_expert("t1", 3)], [_episode("t1", 0.25, 20, icl=True)])
    pair = pairs["t1"]
    assert counts["lose"] == 1 and counts["win"] == counts["tie"] == 0
    # The prompt is the expert record's instruction, OK and task: no in-context example.
    assert pair["prompt"] == INSTRUCTION + [{"from": "human", "value": "Task t1"}]
    assert pair["chosen"] == _turns("expert", 3, final_observation=False)
    assert cp.agent_turns(pair["rejected"]) == 3 + 5 and pair["rejected"][-1]["from"] == "gpt"
    assert pair["rejected"][0]["value"].startswith("Thought: agent 0")
    assert (pair["chosen_reward"], pair["rejected_reward"]) == (1.0, 0.25)


def test_short_failures_are_kept_whole_and_end_on_an_agent_turn():
    pairs, _ = _build(SciWorldTask, [_expert("t1", 6)], [_episode("t1", 0.0, 2)])
    assert pairs["t1"]["rejected"] == _turns("agent", 2, final_observation=False)


def test_success_above_expert_reverses_the_pair_and_ties_are_skipped():
    @dataclass(frozen=True)
    class ShopTask(Task):  # WebShop's rule: the expert's reward is the one its record carries
        env_name = "shop"
        expert_reward_field = "reward"

    experts = [_expert("a", 4, reward=0.5), _expert("b", 4, reward=0.75)]
    pairs, counts = _build(ShopTask, experts, [_episode("a", 0.8, 12), _episode("b", 0.75, 3)])
    assert (counts["win"], counts["tie"], counts["lose"]) == (1, 1, 0) and set(pairs) == {"a"}
    assert pairs["a"]["chosen"] == _turns("agent", 12, final_observation=False)  # the winner is never cut
    assert pairs["a"]["rejected"] == _turns("expert", 4, final_observation=False)


def test_alfworld_binary_rewards_uncut_rejections_and_game_file_keys():
    # Published ETO records name their game in "game_file" (their "id" is a running number);
    # ours use the game folder as the id. Both pair with episodes keyed by the game folder.
    published = _expert(7, 2, game_file="json_2.1.1/train/pick_and_place_simple-Mug-None-Desk-308/trial_T2")
    pairs, counts = _build(AlfWorldTask, [_expert("trial_T1", 2), published],
                           [_episode("trial_T1", 0.9, 30, success=False), _episode("trial_T2", 0.0, 3)])
    assert (counts["lose"], counts["tie"]) == (2, 0) and set(pairs) == {"trial_T1", "trial_T2"}
    assert pairs["trial_T1"]["rejected_reward"] == 0.0  # not won: 0, whatever the partial reward
    assert cp.agent_turns(pairs["trial_T1"]["rejected"]) == 30  # never cut for ALFWorld
    assert AlfWorldTask.expert_key({"id": 3, "game_file": "a/b/trial_X/game.tw-pddl"}) == "trial_X"


def test_cli_reports_counts_and_skips_corrupt_missing_and_errored_episodes(tmp_path):
    experts = [_expert(f"boil_{i}", 3) for i in range(5)]
    gold = tmp_path / "gold.json"
    gold.write_text(json.dumps(experts))
    episodes = tmp_path / "episodes"
    episodes.mkdir()
    for episode in (_episode("boil_0", 0.1, 4), _episode("boil_1", 1.0, 3), _episode("boil_2", 0.0, 2, error="boom"),
                    _episode("stray_9", 0.0, 2)):
        (episodes / f"{episode['meta']['id']}.json").write_text(json.dumps(episode))
    (episodes / "boil_3.json").write_text('{"meta": {"id": "boil_3", "rew')  # a file cut short
    malformed = _episode("boil_4", float("nan"), 2)  # json writes NaN; a NaN reward would pair backwards
    (episodes / "boil_4.json").write_text(json.dumps(malformed))
    broken = _episode("stray_8", 0.0, 2)
    broken["meta"]["task_turn"] = 40  # past the end of its conversation
    (episodes / "stray_8.json").write_text(json.dumps(broken))
    (episodes / "_summary.json").write_text("{}")
    out = tmp_path / "pm" / "pairs.json"
    result = subprocess.run([sys.executable, "construct_preference.py", "--task", "sciworld", "--golden_traj_path",
                             str(gold), "--output_path", str(out), "--episodes_dir", str(episodes)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "win: 0, tie: 1, lose: 1" in result.stdout and "1 pairs" in result.stdout
    assert "3 unreadable episode files" in result.stdout and "boil_3.json" in result.stderr
    assert "reward nan is not a number" in result.stderr and "task_turn 40 is not a turn" in result.stderr
    assert "1 episodes with an agent error" in result.stdout
    assert "3 expert trajectories without a usable explored episode" in result.stdout
    assert "1 explored episodes without an expert trajectory" in result.stdout
    pairs = load_preference_data(str(out))  # the DPO trainer's validator accepts the output
    assert [p["id"] for p in pairs] == ["boil_0"]


@pytest.mark.parametrize("args, message", [
    (["--task", "nope"], "unknown task config 'nope'"),
    (["--task", "sciworld"], "give --model"),
    (["--task", "sciworld", "--model", "no-such-model"], "does not exist"),
])
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    gold = tmp_path / "gold.json"
    gold.write_text(json.dumps([_expert("a", 1)]))
    result = subprocess.run([sys.executable, "construct_preference.py", "--golden_traj_path", str(gold),
                             "--output_path", str(tmp_path / "o.json"), *args],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1


def _shop_pair(i, chosen_actions, rejected_actions):
    def turns(actions):
        out = []
        for k, action in enumerate(actions):
            out.append({"from": "gpt", "value": f"Thought: step {k}.\nAction: {action}"})
            if k < len(actions) - 1:
                out.append({"from": "human", "value": f"Observation: page {k}"})
        return out
    prompt = [{"from": "human", "value": "Shop for the user."}, {"from": "gpt", "value": "OK"},
              {"from": "human", "value": f"WebShop [SEP] Instruction: [SEP] item {i} [SEP] Search"}]
    return {"id": str(i), "prompt": prompt, "chosen": turns(chosen_actions), "rejected": turns(rejected_actions)}


def test_a_pair_cut_at_its_divergence_keeps_the_shared_turns_in_the_prompt_and_one_turn_a_side():
    from eto.construct.preference import cut_at_divergence
    from eto.records import validate_pair

    pair = _shop_pair(0, ["search[red scarf]", "click[B0SCARF001]", "click[large]", "click[Buy Now]"],
                      ["search[red scarf]", "click[B0SCARF002]", "click[large]", "click[Buy Now]"])
    cut = cut_at_divergence(pair)
    validate_pair(cut, 0)
    assert cut["prompt"] == pair["prompt"] + pair["chosen"][:2]  # the search and its page
    assert cut["chosen"] == [pair["chosen"][2]] and cut["rejected"] == [pair["rejected"][2]]
    assert "click[large]" not in json.dumps(cut["rejected"])  # the rejected side's later actions are gone
    assert cut_at_divergence(_shop_pair(1, ["search[x]"], ["search[x]"])) is None  # never differ
    observation_first = _shop_pair(2, ["search[x]", "click[B0X]"], ["search[x]", "click[B0X]"])
    observation_first["rejected"][1] = {"from": "human", "value": "Observation: another page"}
    assert cut_at_divergence(observation_first) is None


def test_pair_analysis_finds_the_first_divergent_action_and_its_kind(tmp_path, tiny_model_path, capsys):
    """eval_agent.pair_analysis: where each pair's sides first differ and what kind of action each
    takes there; with two models, their greedy action at that turn (here the tiny model twice:
    the same action before and after, so nothing moved)."""
    from eval_agent.pair_analysis import action_kind, divergences, main

    assert [action_kind(a) for a in ("search[red scarf]", "click[B0SCARF001]", "click[Buy Now]", "click[large]",
                                     "click[Features]", "click[< Prev]", "think[x]", None)] == [
        "search", "item", "buy", "option", "detail", "navigate", "think", "none"]
    pairs = [_shop_pair(0, ["search[red scarf]", "click[B0SCARF001]", "click[Buy Now]"],
                        ["search[red scarf]", "click[B0SCARF002]", "click[Buy Now]"]),
             _shop_pair(1, ["search[wool scarf]", "click[B0SCARF001]"], ["search[scarf]", "click[B0SCARF001]"]),
             _shop_pair(2, ["search[x]"], ["search[x]"])]
    rows = divergences(pairs)
    assert [(r["turn"], r.get("chosen_kind"), r.get("rejected_kind")) for r in rows] == [
        (2, "item", "item"), (0, "search", "search"), (None, None, None)]
    assert rows[0]["chosen"] == "click[B0SCARF001]" and rows[0]["rejected"] == "click[B0SCARF002]"
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(pairs))
    out = tmp_path / "analysis.json"
    assert main(["--pairs", str(path), "--before", tiny_model_path, "--after", tiny_model_path, "--max_new_tokens", "8",
                 "--engine", "hf", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["summary"]["diverged"] == 2 and result["summary"]["pairs"] == 3
    assert [r["before"] for r in result["pairs"]] == [r["after"] for r in result["pairs"]]  # same model, greedy
    assert "kinds (chosen → rejected)" in capsys.readouterr().out
    assert main(["--pairs", str(path), "--before", tiny_model_path]) == 2
    path.write_text('{"not": "pairs"}')
    assert main(["--pairs", str(path)]) == 2


def test_behaviour_profiles_how_episodes_end_and_which_actions_they_take(tmp_path, capsys):
    """eval_agent.behaviour: per model folder, the share of each episode end, of zero-reward
    episodes, and the actions per episode by kind (only the task's turns: not the in-context example)."""
    from eval_agent.behaviour import main

    def episode(folder, task, actions, end, reward):
        turns = INSTRUCTION + ICL + [{"from": "human", "value": f"Task {task}"}]
        for action in actions:
            turns += [{"from": "gpt", "value": f"Thought: go.\nAction: {action}"}, {"from": "human", "value": "Observation: ok"}]
        meta = {"id": task, "reward": reward, "success": end == "success", "terminate_reason": end, "error": None,
                "steps": len(actions), "task_turn": 4, "finished": True}
        (folder / f"{task}.json").write_text(json.dumps({"meta": meta, "conversations": turns}))

    good, looping = tmp_path / "sft" / "split", tmp_path / "dpo" / "split"
    good.mkdir(parents=True), looping.mkdir(parents=True)
    episode(good, "1", ["search[scarf]", "click[B0SCARF001]", "click[red]", "click[Buy Now]"], "success", 1.0)
    episode(good, "2", ["search[hat]", "click[B0HATS0001]", "click[Buy Now]"], "purchased", 0.5)
    episode(looping, "1", ["search[scarf]", "click[Back to Search]", "click[Back to Search]"], "max_steps", 0.0)
    episode(looping, "2", ["search[hat]", "click[B0HATS0001]", "click[Buy Now]"], "purchased", 0.5)
    assert main([str(good), str(looping)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("| model | episodes | reward | reward 0 | ends: max_steps | ends: purchased | ends: success "
                        "| buy / ep | item / ep | navigate / ep | option / ep | search / ep |")
    assert lines[2] == "| sft | 2 | 0.750 | 0% | 0% | 50% | 50% | 1.00 | 1.00 | 0.00 | 0.50 | 1.00 |"
    assert lines[3] == "| dpo | 2 | 0.250 | 50% | 50% | 50% | 0% | 0.50 | 0.50 | 1.00 | 0.00 | 1.00 |"
    assert main([str(good), "--names", "a", "b"]) == 2
    assert main([str(tmp_path / "empty")]) == 1
