"""The baselines' data flow: Best-of-N over sampled episodes, RFT's training set, and the
comparison report's intervals, on episode files written here; and N samples per task through the
real harness (WebShop's scripted expert on the generated catalog, no model)."""

import csv
import json
import os
import subprocess
import sys

import pytest

from eto.construct.rft_data import main as rft_main
from eto.records import make_episode
from eval_agent.report import build
from eval_agent.results import (best_and_mean_of_samples, bootstrap_mean_ci, combine_samples, load_outcomes,
                                paired_difference, sample_folders)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPT = [{"from": "human", "value": "Instruction."}, {"from": "gpt", "value": "OK"}]


def _episode(task_id, reward, success=False, steps=3, error=None, actions=("look",), reward_by_step=None):
    turns = [{"from": "human", "value": f"Task {task_id}."}]
    for action in actions:
        turns += [{"from": "gpt", "value": f"Thought: t.\nAction: {action}"}, {"from": "human", "value": "Observation: o."}]
    return make_episode(task_id, {"task_id": task_id}, steps=steps, reward=reward, finished=True, success=success,
                        terminate_reason="done", error=error, task_turn=0, timing=None, conversations=turns,
                        reward_by_step=reward_by_step)


def _write(folder, record):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{record['meta']['id']}.json"), "w") as f:
        json.dump(record, f)


# ------------------------------------------------------------------------------ statistics
def test_bootstrap_interval_is_computed_from_per_task_rewards():
    assert bootstrap_mean_ci([0.4] * 7) == pytest.approx((0.4, 0.4))
    rewards = [0.0, 1.0, 0.5, 0.25, 1.0, 0.0, 0.75, 1.0]
    low, high = bootstrap_mean_ci(rewards)
    assert low < sum(rewards) / len(rewards) < high and 0.0 <= low and high <= 1.0
    assert bootstrap_mean_ci(rewards) == (low, high)  # seeded: a regenerated report does not move
    wide_low, wide_high = bootstrap_mean_ci(rewards[:4])
    narrow_low, narrow_high = bootstrap_mean_ci(rewards * 8)
    assert narrow_high - narrow_low < high - low < wide_high - wide_low + 1e-9
    with pytest.raises(ValueError):
        bootstrap_mean_ci([])


def test_paired_difference_uses_the_tasks_both_methods_have():
    diff = paired_difference({"a": 1.0, "b": 0.5, "c": 0.0}, {"a": 0.5, "b": 0.5, "d": 1.0})
    assert diff["n"] == 2 and diff["mean"] == 0.25 and diff["low"] == 0.0 and diff["high"] == 0.5
    assert paired_difference({"a": 1.0}, {"b": 1.0}) is None


def test_the_sign_flip_test_tells_a_consistent_difference_from_noise():
    from eval_agent.results import sign_flip_p

    assert sign_flip_p([0.0] * 20) == 1.0
    assert sign_flip_p([0.1] * 12) < 0.001  # every task better: exactly 2/4096 of the flips are as far
    assert abs(sign_flip_p([0.1] * 12) - 2 / 4096) < 0.001
    assert sign_flip_p([0.3, -0.3, 0.2, -0.2, 0.1, -0.1, 0.05]) > 0.8  # +0.05 net of cancelling pairs
    assert sign_flip_p([1.0, 1.0, 1.0]) == sign_flip_p([1.0, 1.0, 1.0])  # seeded


def test_best_of_n_takes_each_tasks_best_sample_and_mean_of_n_its_average(tmp_path):
    folder = str(tmp_path / "bon")
    for k, rewards in enumerate(([0.2, 1.0, 0.0], [0.6, 0.5, 0.0], [0.4, 0.0, 0.1]), 1):
        for task, reward in zip("xyz", rewards):
            _write(os.path.join(folder, f"sample_{k}"), _episode(task, reward, success=reward == 1.0, steps=k))
    _write(os.path.join(folder, "sample_3"), _episode("w", 1.0, error="agent failed"))  # left out
    assert [os.path.basename(p) for p in sample_folders(folder)] == ["sample_1", "sample_2", "sample_3"]
    best, mean = best_and_mean_of_samples(folder)
    assert best == {"x": 0.6, "y": 1.0, "z": 0.1}
    assert mean == pytest.approx({"x": 0.4, "y": 0.5, "z": 1 / 30})
    assert combine_samples(folder, "best")["x"]["steps"] == 2.0  # the best episode's own steps
    assert combine_samples(folder, "mean")["y"]["success"] == pytest.approx(1 / 3)
    assert sample_folders(str(tmp_path / "plain")) == [str(tmp_path / "plain")]


# ------------------------------------------------------------------------------ RFT training set
def test_rft_data_is_the_experts_plus_new_successes_deduplicated_by_task_and_content(tmp_path):
    experts = [{"id": t, "conversations": PROMPT + [{"from": "human", "value": f"Task {t}."},
                                                   {"from": "gpt", "value": "Thought: t.\nAction: look"}]}
               for t in ("a", "b")]
    gold = tmp_path / "sft.json"
    gold.write_text(json.dumps(experts))
    explored = tmp_path / "explored"
    _write(explored / "sample_1", _episode("a", 1.0, success=True))                           # = the expert's: dropped
    _write(explored / "sample_2", _episode("a", 1.0, success=True, actions=("open door",)))   # new: kept
    _write(explored / "sample_1", _episode("b", 0.3))                                          # failed: skipped
    _write(explored / "sample_2", _episode("b", 1.0, success=True, error="crash"))            # error: skipped
    _write(explored / "sample_1", _episode("c", 1.0, success=True))                           # no expert: skipped
    later = tmp_path / "round2"
    _write(later, _episode("a", 1.0, success=True, actions=("open door",)))                   # same as a kept one
    _write(later, _episode("b", 1.0, success=True, actions=("go east", "take key")))          # new: kept
    out = tmp_path / "rft.json"
    assert rft_main(["--task", "sciworld", "--golden_traj_path", str(gold), "--episodes_dir", str(explored),
                     "--episodes_dir", str(later), "--output_path", str(out)]) == 0
    records = json.loads(out.read_text())
    assert [r["id"] for r in records] == ["a", "b", "a-rft-1", "b-rft-1"]
    assert records[:2] == experts
    assert records[2]["conversations"][:3] == experts[0]["conversations"][:3]  # the expert's prompt, no example
    assert [t["value"] for t in records[3]["conversations"][3:] if t["from"] == "gpt"] == [
        "Thought: t.\nAction: go east", "Thought: t.\nAction: take key"]
    assert records[3]["conversations"][-1]["from"] == "gpt"  # ends on an agent turn

    # --expert_records 1 (SFT on the first task only): b's expert record is no longer trained on,
    # but it still opens b's success
    assert rft_main(["--task", "sciworld", "--golden_traj_path", str(gold), "--episodes_dir", str(explored),
                     "--episodes_dir", str(later), "--output_path", str(out), "--expert_records", "1"]) == 0
    limited = json.loads(out.read_text())
    assert [r["id"] for r in limited] == ["a", "a-rft-1", "b-rft-1"]
    assert limited[2] == records[3]


def test_rft_data_fails_with_one_line_on_a_missing_folder(tmp_path):
    gold = tmp_path / "sft.json"
    gold.write_text("[]")
    result = subprocess.run([sys.executable, "construct_rft_data.py", "--task", "sciworld", "--golden_traj_path",
                             str(gold), "--episodes_dir", str(tmp_path / "nope"), "--output_path", str(tmp_path / "o.json")],
                            cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr


# ------------------------------------------------------------------------------ comparison report
def test_comparison_report_rows_and_intervals_come_from_the_episodes(tmp_path):
    sft_rewards = {"t1": 0.0, "t2": 0.5, "t3": 1.0, "t4": 0.5}
    eto_rewards = {"t1": 0.5, "t2": 0.5, "t3": 1.0, "t4": 1.0}
    for name, rewards in (("sft", sft_rewards), ("eto", eto_rewards)):
        for task, reward in rewards.items():
            _write(tmp_path / name, _episode(task, reward, success=reward == 1.0))
    for k in (1, 2):
        for task, reward in sft_rewards.items():
            _write(tmp_path / "bon" / f"sample_{k}", _episode(task, reward if k == 1 else 1.0 - reward))
    stages = tmp_path / "stages"
    stages.mkdir()
    markers = [("eval_sft_test", {"row": "SFT", "split": "test", "episodes": str(tmp_path / "sft")}),  # before methods
               ("round1_eval_test", {"row": "round_1", "split": "test", "episodes": str(tmp_path / "eto")}),
               ("bon_eval_test", {"row": "best_of_2", "method": "bon", "round": "0", "split": "test", "samples": "2",
                                  "episodes": str(tmp_path / "bon")})]
    for i, (stage, fields) in enumerate(markers):
        (stages / f"{stage}.json").write_text(json.dumps({"stage": stage, "finished_at": i, "seconds": 1, **fields}))
    build(str(stages), str(tmp_path / "report"), "t")
    table = {line.split(" | ")[0].strip("| "): line.split(" | ")
             for line in (tmp_path / "compare.md").read_text().split("## Reward per round")[0].splitlines()
             if line.startswith("| ") and "---" not in line}
    low, high = bootstrap_mean_ci(list(sft_rewards.values()))
    assert table["SFT"][1] == f"0.500 [{low:.3f}, {high:.3f}]" and table["SFT"][4] == "" and table["SFT"][5] == ""
    assert table["ETO (round 1)"][1].startswith("0.750 ")
    diff = paired_difference(eto_rewards, sft_rewards)
    assert table["ETO (round 1)"][4] == f"{diff['mean']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}]"
    assert table["ETO (round 1)"][5] == f"{diff['p']:.3f}"
    assert table["Best-of-2"][1].startswith("0.750 ") and table["Mean-of-2"][1].startswith("0.500 ")
    assert list(table)[1:] == ["SFT", "Best-of-2", "Mean-of-2", "ETO (round 1)"]  # the paper's order
    against = {tuple(c.strip() for c in line.strip("| ").split(" | ")[:2]): line.strip("| ").split(" | ")[2:]
               for line in (tmp_path / "compare.md").read_text().split("## ETO against each method")[1].splitlines()
               if line.startswith("| ETO (round")}
    assert list(against) == [("ETO (round 1)", "SFT"), ("ETO (round 1)", "Best-of-2"), ("ETO (round 1)", "Mean-of-2")]
    assert against[("ETO (round 1)", "SFT")] == [table["ETO (round 1)"][4], table["ETO (round 1)"][5]]
    assert (tmp_path / "compare.png").stat().st_size > 0
    per_task = table_from_task_csv(tmp_path / "compare_tasks.csv")
    assert per_task == {("SFT", "test"): 0.5, ("ETO (round 1)", "test"): 0.75, ("Best-of-2", "test"): 0.75,
                        ("Mean-of-2", "test"): 0.5}
    assert {row: cells[1][:5] for row, cells in table.items() if row != "method"} == \
           {row: f"{mean:.3f}" for (row, _), mean in per_task.items()}


def table_from_task_csv(path, count=False):
    """(row, split) -> average reward (or, with count, the number of tasks), recomputed from compare_tasks.csv."""
    import csv
    from collections import defaultdict

    rewards = defaultdict(list)
    with open(path, newline="") as f:
        for line in csv.DictReader(f):
            rewards[(line["row"], line["split"])].append(float(line["reward"]))
    return {key: len(values) if count else sum(values) / len(values) for key, values in rewards.items()}


COMMITTED_COMPARISONS = sorted(
    os.path.relpath(os.path.join(folder, "compare.md"), REPO_ROOT)
    for folder, _, files in os.walk(os.path.join(REPO_ROOT, "results")) if "compare.md" in files)


@pytest.mark.parametrize("compare_md", COMMITTED_COMPARISONS)
def test_a_committed_comparison_has_the_averages_of_its_per_task_csv(compare_md):
    """Every results/**/compare.md is recomputed from the compare_tasks.csv beside it, to the
    table's three decimals: the methods table (with each row's task count) and, for the rounds
    before a method's last, the table of reward per round."""
    from eval_agent.compare import UNCHANGED
    from eval_agent.report import split_label

    def table(section):
        lines = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
        return [[cell.strip() for cell in line.strip()[1:-1].split("|")] for line in lines]  # empty cells kept

    path = os.path.join(REPO_ROOT, compare_md)
    csv_path = os.path.join(os.path.dirname(path), "compare_tasks.csv")
    per_task, counts = table_from_task_csv(csv_path), table_from_task_csv(csv_path, count=True)
    splits = sorted({split for _, split in per_task})
    sections = open(path, encoding="utf-8").read().split("\n## ")
    header, *rows = table(sections[0])
    checked = set()
    for split in splits:
        column = header.index(f"{split_label(split, splits)} reward")
        tasks_column = header.index("tasks", column)  # tables with a p column have one more cell
        for cells in rows:
            if not cells[column]:
                continue
            name = cells[0].removesuffix(UNCHANGED)  # the CSV names the round alone
            assert cells[column].split(" [")[0] == f"{per_task[(name, split)]:.3f}", (name, split)
            assert int(cells[tasks_column]) == counts[(name, split)], (name, split)
            checked.add((name, split))
    for section in sections[1:]:
        if section.startswith("Reward per round"):
            round_header, *round_rows = table(section)
            for cells in round_rows:
                split = next(s for s in splits if split_label(s, splits) == cells[1])
                for name, cell in zip(round_header[3:], cells[3:]):  # "round 1", ...: round 0 is SFT's row
                    key = (f"{cells[0]} ({name})", split)
                    if cell and key in per_task:
                        assert cell.split(" [")[0] == f"{per_task[key]:.3f}", key
                        checked.add(key)
    assert checked == set(per_task)  # no row of the CSV is missing from the tables


def test_each_rounds_evaluation_is_in_the_iteration_table(tmp_path):
    rewards = {"sft": 0.25, "eto1": 0.5, "eto2": 0.75, "rft1": 0.0}
    for name, reward in rewards.items():
        for task in ("t1", "t2"):
            _write(tmp_path / name, _episode(task, reward))
    stages = tmp_path / "stages"
    stages.mkdir()
    markers = [("eval_sft_test", {"row": "SFT", "method": "sft", "round": "0", "folder": "sft"}),
               ("round1_eval_test", {"row": "round_1", "method": "eto", "round": "1", "folder": "eto1"}),
               ("round2_eval_test", {"row": "round_2", "method": "eto", "round": "2", "folder": "eto2"}),
               ("rft_round1_eval_test", {"row": "rft_round_1", "method": "rft", "round": "1", "folder": "rft1"}),
               ("round3_explore", {"row": "round_3", "folder": "eto2"}),  # an exploration: not an evaluation
               ("dose_lr2e-6_steps25_eval_test", {"row": "dose_lr2e-6_steps25", "method": "dose", "round": "1",
                                                  "lr": "2e-6", "steps": "25", "folder": "eto1"}),
               ("variant_cut_eval_test", {"row": "variant_cut", "method": "variant", "variant": "cut", "round": "1",
                                          "folder": "rft1"})]
    for i, (stage, fields) in enumerate(markers):
        fields = {**fields, "split": "test", "episodes": str(tmp_path / fields.pop("folder"))}
        (stages / f"{stage}.json").write_text(json.dumps({"stage": stage, "finished_at": i, "seconds": 1, **fields}))
    build(str(stages), str(tmp_path / "report"), "t")
    text = (tmp_path / "compare.md").read_text()
    rounds = {line.split(" | ")[0].strip("| "): [c.strip(" |") for c in line.split(" | ")[2:]]
              for line in text.split("## Reward per round")[1].split("\n## ")[0].splitlines()
              if line.startswith("| ") and "---" not in line}
    assert [c[:5] for c in rounds["ETO"]] == ["0.250", "0.500", "0.750"]  # round 0 is SFT
    assert [c[:5] for c in rounds["RFT"]] == ["0.250", "0.000", ""]
    assert "ETO (round 2)" in text.split("## Reward per round")[0]  # the main table: the last round
    assert "ETO (round 3)" not in text and "| dose_lr2e-6_steps25 | 0.500" in text and "| variant_cut | 0.000" in text
    assert table_from_task_csv(tmp_path / "compare_tasks.csv") == {
        ("SFT", "test"): 0.25, ("ETO (round 1)", "test"): 0.5, ("ETO (round 2)", "test"): 0.75,
        ("RFT (round 1)", "test"): 0.0, ("dose_lr2e-6_steps25", "test"): 0.5,
        ("variant_cut", "test"): 0.0}  # every round, not only the last


def test_a_split_only_the_expert_played_is_left_out_of_the_comparison(tmp_path):
    for name, reward in (("sft", 0.25), ("expert", 1.0), ("expert_heldout", 1.0)):
        _write(tmp_path / name, _episode("t1", reward))
    stages = tmp_path / "stages"
    stages.mkdir()
    markers = [("eval_sft_test", "SFT", "sft", "test", "sft"), ("eval_expert_test", "expert", "expert", "test", "expert"),
               ("eval_expert_heldout", "expert", "expert", "heldout", "expert_heldout")]
    for i, (stage, row, method, split, folder) in enumerate(markers):
        marker = {"stage": stage, "finished_at": i, "seconds": 1, "row": row, "method": method, "round": "0",
                  "split": split, "episodes": str(tmp_path / folder)}
        (stages / f"{stage}.json").write_text(json.dumps(marker))
    build(str(stages), str(tmp_path / "report"), "t")
    header = (tmp_path / "compare.md").read_text().split("| method |")[1].splitlines()[0]
    assert "test reward" in header and "heldout" not in header
    assert set(table_from_task_csv(tmp_path / "compare_tasks.csv")) == {("SFT", "test"), ("Expert", "test")}


def test_baselines_are_reference_rows_after_the_methods_and_not_compared_with_eto(tmp_path):
    """WebShop's rule baseline and random clicker (presets' reference_agents) get rows of their
    own, before the expert's; ETO is compared with the methods only; a split only they played is
    left out."""
    plays = (("eval_sft_test", "SFT", "sft", "0", "test", 0.25), ("round1_eval_test", "round_1", "eto", "1", "test", 0.5),
             ("eval_expert_test", "expert", "expert", "0", "test", 1.0), ("eval_random_test", "random", "random", "0", "test", 0.0),
             ("eval_rule_test", "rule", "rule", "0", "test", 0.75), ("eval_rule_heldout", "rule", "rule", "0", "heldout", 0.5))
    stages = tmp_path / "stages"
    stages.mkdir()
    for i, (stage, row, method, round_, split, reward) in enumerate(plays):
        _write(tmp_path / stage, _episode("t1", reward))
        marker = {"stage": stage, "finished_at": i, "seconds": 1, "row": row, "method": method, "round": round_,
                  "split": split, "episodes": str(tmp_path / stage), "model_free": "1"}
        (stages / f"{stage}.json").write_text(json.dumps(marker))
    build(str(stages), str(tmp_path / "report"), "t")
    text = (tmp_path / "compare.md").read_text()
    header, *rows = [line for line in text.split("\n## ")[0].splitlines() if line.startswith("| ") and "---" not in line]
    assert "heldout" not in header
    assert [r.split(" | ")[0].strip("| ") for r in rows] == ["SFT", "ETO (round 1)", "Rule baseline", "Random clicker", "Expert"]
    assert "| Rule baseline | 0.750" in text and "| Random clicker | 0.000" in text
    against = [line.split(" | ")[1] for line in text.split("## ETO against each method")[1].splitlines()
               if line.startswith("| ETO (round")]
    assert against == ["SFT"]


def test_the_report_shows_what_each_rounds_pairs_contrast_and_leaves_explorations_out_of_its_splits(tmp_path):
    """report.md's pairs per round: win / tie / lose and the truncated pairs from the stages' logs,
    the first divergent action by kind from the pairs, what pair_analysis found where it was run;
    an exploration's episodes (train tasks) are not shown as an evaluation."""
    def turn(action):
        return {"from": "gpt", "value": f"Thought: t.\nAction: {action}"}

    prompt = [{"from": "human", "value": "Find a lamp."}]
    pairs = [{"id": "a", "prompt": prompt, "chosen": [turn("click[b0abcdefgh]")], "rejected": [turn("click[b0zzzzzzzz]")]},
             {"id": "b", "prompt": prompt, "chosen": [turn("search[lamp]"), turn("click[buy now]")],
              "rejected": [turn("search[lamp]"), turn("click[next >]")]}]
    (tmp_path / "pm_1.json").write_text(json.dumps(pairs))
    (tmp_path / "pm_1.analysis.json").write_text(json.dumps(
        {"summary": {"rejected before → chosen after": 0.5, "pairs whose rejected action the policy took before": 2}}))
    _write(tmp_path / "explored", _episode("t1", 1.0))
    (tmp_path / "explored" / "_summary.json").write_text(json.dumps(
        {"n": 1, "average_reward": 1.0, "success_rate": 1.0, "average_steps": 1.0}))
    stages = tmp_path / "logs" / "stages"
    stages.mkdir(parents=True)
    (tmp_path / "logs" / "round1_pairs.log").write_text("==== cmd\nwin: 1, tie: 3, lose: 2\n2 pairs -> pm_1.json\n")
    (tmp_path / "logs" / "round1_dpo.log").write_text("train: 2 pairs, 1 truncated, 0 dropped (no agent turn left)\n")
    for i, marker in enumerate([{"stage": "round1_explore", "row": "round_1", "episodes": str(tmp_path / "explored")},
                                {"stage": "round1_pairs", "row": "round_1", "pairs": str(tmp_path / "pm_1.json")}]):
        (stages / f"{marker['stage']}.json").write_text(json.dumps({**marker, "finished_at": i, "seconds": 1}))
    text = build(str(stages), str(tmp_path / "report"), "t")
    assert "test reward" not in text  # the exploration is not an evaluation
    (row,) = [line for line in text.split("## Pairs per round")[1].splitlines() if line.startswith("| round 1")]
    assert row == "| round 1 | 1 / 3 / 2 | 2 | 1 of 2 | item → item 1, buy → navigate 1 | 0.50 of 2 |"


def test_reward_by_step_is_averaged_over_tasks_from_each_episodes_rewards(tmp_path):
    """The efficiency table (paper, Figure 3) from each method's episodes' rewards per step."""
    runs = {"sft": {"t1": [0.0, 0.5, 0.5], "t2": [0.0, 0.0, 0.0, 1.0], "t3": [0.0, 0.0]},
            "eto": {"t1": [0.5, 0.5], "t2": [1.0], "t3": [0.0]}}
    for name, by_task in runs.items():
        for task, rewards in by_task.items():
            _write(tmp_path / name, _episode(task, rewards[-1], steps=len(rewards), reward_by_step=rewards))
    _write(tmp_path / "eto", _episode("t4", 1.0))  # saved before rewards per step were recorded: left out
    stages = tmp_path / "stages"
    stages.mkdir()
    for i, (stage, method, folder) in enumerate((("eval_sft_test", "sft", "sft"), ("round1_eval_test", "eto", "eto"))):
        marker = {"stage": stage, "finished_at": i, "seconds": 1, "row": method, "method": method, "round": str(i),
                  "split": "test", "episodes": str(tmp_path / folder)}
        (stages / f"{stage}.json").write_text(json.dumps(marker))
    build(str(stages), str(tmp_path / "report"), "t")
    text = (tmp_path / "compare.md").read_text().split("## Reward by step")[1]
    table = {line.split(" | ")[0].strip("| "): [c.strip(" |") for c in line.split(" | ")[1:]]
             for line in text.splitlines() if line.startswith("| ") and "---" not in line}
    assert table["method"] == ["step 1", "step 2", "step 3", "step 4", "steps to final reward", "tasks"]
    # SFT: t1 reaches 0.5 at step 2, t2 reaches 1.0 at step 4, t3 never earns: (2 + 4) / 2.
    assert table["SFT"] == ["0.000", "0.167", "0.167", "0.500", "3.0", "3"]
    assert table["ETO (round 1)"] == ["0.500", "0.500", "0.500", "0.500", "1.0", "3"]
    assert (tmp_path / "efficiency.png").stat().st_size > 0


# ------------------------------------------------------------------------------ self-play (no expert)
def _own_episode(task_id, reward, actions, success=False, example=True):
    """An episode as the untuned model plays it: instruction, OK, an in-context example, the task."""
    shown = [{"from": "human", "value": "Example task."}, {"from": "gpt", "value": "Thought: e.\nAction: example"},
             {"from": "human", "value": "Observation: e."}, {"from": "gpt", "value": "Thought: e.\nAction: done"}]
    head = PROMPT + (shown if example else [])
    record = _episode(task_id, reward, success=success, actions=actions)
    record["conversations"] = head + record["conversations"]
    record["meta"]["task_turn"] = len(head)
    return record


def test_selfplay_pairs_come_only_from_a_tasks_episodes_whose_rewards_differ(tmp_path):
    from eto.construct.selfplay_pairs import main as selfplay_main

    explored = tmp_path / "explored"
    for k, (reward, actions) in enumerate([(0.5, ("look",)), (0.0, ("jump", "jump")), (1.0, ("open door",))], 1):
        _write(explored / f"sample_{k}", _own_episode("a", reward, actions, success=reward == 1.0))
    for k in (1, 2, 3):  # same reward every time: no pair, whatever the actions
        _write(explored / f"sample_{k}", _own_episode("b", 0.25, (f"try {k}",)))
    _write(explored / "sample_1", _own_episode("c", 1.0, ("look",), success=True))  # played once: no pair
    _write(explored / "sample_2", _own_episode("d", 0.3, ("look",)))
    _write(explored / "sample_3", _own_episode("d", 0.2, ("walk",)))  # differs by 0.1 only
    out = tmp_path / "pm.json"
    assert selfplay_main(["--task", "sciworld", "--episodes_dir", str(explored), "--output_path", str(out)]) == 0
    pairs = json.loads(out.read_text())
    assert [p["id"] for p in pairs] == ["a", "d"]
    a = pairs[0]
    assert (a["chosen_reward"], a["rejected_reward"]) == (1.0, 0.0)
    assert a["prompt"] == PROMPT + [{"from": "human", "value": "Task a."}]  # no in-context example
    assert [t["value"] for t in a["chosen"] if t["from"] == "gpt"] == ["Thought: t.\nAction: open door"]
    assert [t["value"] for t in a["rejected"] if t["from"] == "gpt"] == ["Thought: t.\nAction: jump"] * 2
    assert a["chosen"][-1]["from"] == a["rejected"][-1]["from"] == "gpt"
    assert selfplay_main(["--task", "sciworld", "--episodes_dir", str(explored), "--output_path", str(out),
                          "--margin", "0.1"]) == 0
    assert [p["id"] for p in json.loads(out.read_text())] == ["a"]  # d's 0.1 is not more than the margin
    # Nothing to pair is an empty list, for run_eto.sh to keep the policy unchanged.
    assert selfplay_main(["--task", "sciworld", "--episodes_dir", str(explored), "--output_path", str(out),
                          "--margin", "1.0"]) == 0
    assert json.loads(out.read_text()) == []


def test_selfplay_rft_data_is_the_successes_alone_with_their_own_task_prompt(tmp_path):
    explored = tmp_path / "explored"
    _write(explored / "sample_1", _own_episode("a", 1.0, ("open door",), success=True))
    _write(explored / "sample_2", _own_episode("a", 1.0, ("open door",), success=True))  # same turns: dropped
    _write(explored / "sample_3", _own_episode("a", 0.0, ("jump",)))                   # failed: skipped
    out = tmp_path / "rft.json"
    assert rft_main(["--task", "sciworld", "--no_expert", "--episodes_dir", str(explored), "--output_path", str(out)]) == 0
    records = json.loads(out.read_text())
    assert [r["id"] for r in records] == ["a-rft-1"]
    assert records[0]["conversations"][:3] == PROMPT + [{"from": "human", "value": "Task a."}]
    assert rft_main(["--task", "sciworld", "--no_expert", "--episodes_dir", str(explored / "sample_3"),
                     "--output_path", str(out)]) == 0
    assert json.loads(out.read_text()) == []  # no success: nothing to train on


# ------------------------------------------------------------------------------ N samples per task
def test_samples_per_task_through_the_harness_resume_and_report_best_of_n(tmp_path):
    command = [sys.executable, "-m", "eval_agent.main", "--agent_config", "expert", "--model_name", "expert",
               "--exp_config", "webshop", "--split", "test", "--max_tasks", "3", "--output_dir", str(tmp_path),
               "--num_samples", "2", "--exp_name", "_bon"]
    first = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    folder = tmp_path / "expert" / "webshop_bon"
    for k in (1, 2):
        episodes = sorted(p.name for p in (folder / f"sample_{k}").glob("[!_]*.json"))
        assert len(episodes) == 3 and (folder / f"sample_{k}" / "_summary.json").exists()
    assert "sample 2/2: 3 episodes finished" in first.stdout and "3 tasks: best-of-2 average reward" in first.stdout
    assert load_outcomes(str(folder / "sample_1")).keys() == load_outcomes(str(folder / "sample_2")).keys()
    removed = folder / "sample_2" / sorted(p.name for p in (folder / "sample_2").glob("[!_]*.json"))[0]
    removed.unlink()
    kept = {p: p.stat().st_mtime for p in folder.glob("sample_*/[!_]*.json")}
    second = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0 and "1 episodes played this run" in second.stdout
    assert removed.exists() and all(p.stat().st_mtime == m for p, m in kept.items())


def test_publish_results_copies_the_reports_and_stage_times(tmp_path):
    for task, reward in (("t1", 0.5), ("t2", 1.0)):
        _write(tmp_path / "sft", _episode(task, reward))
    stages = tmp_path / "logs" / "stages"
    stages.mkdir(parents=True)
    (stages / "eval_sft_test.json").write_text(json.dumps(
        {"stage": "eval_sft_test", "finished_at": 1, "seconds": 42, "row": "SFT", "method": "sft", "round": "0",
         "split": "test", "episodes": str(tmp_path / "sft")}))
    (stages / "sft.json").write_text(json.dumps(  # trained again on a later machine, other weights
        {"stage": "sft", "finished_at": 0, "seconds": 100, "model": "ckpt/sft", "weights": "aaaa",
         "remade": [{"seconds": 90, "weights": "bbbb", "same_weights": False}, {"seconds": 80, "weights": "cccc"}]}))
    (stages / "round1_dpo.json").write_text(json.dumps(
        {"stage": "round1_dpo", "finished_at": 2, "seconds": 50, "model": "ckpt/dpo", "beta": "0.1", "lr": "1e-6",
         "loss": "sigmoid+sft", "weights": "dddd"}))
    out = tmp_path / "published"
    run = subprocess.run([sys.executable, "scripts/publish_results.py", str(tmp_path / "logs"), str(out),
                          "--preset", "presets/evidence.toml"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr
    assert {p.name for p in out.iterdir()} >= {"report.md", "compare.md", "compare_tasks.csv", "stage_times.csv",
                                                "evidence.toml"}
    assert table_from_task_csv(out / "compare_tasks.csv") == {("SFT", "test"): 0.75}
    with open(out / "stage_times.csv", newline="") as f:
        times = {row["stage"]: row for row in csv.DictReader(f)}
    assert times["eval_sft_test"]["seconds"] == "42" and times["eval_sft_test"]["split"] == "test"
    assert (times["sft"]["weights"], times["sft"]["remade_seconds"]) == ("cccc", "80")  # the last training
    assert [times["round1_dpo"][k] for k in ("beta", "lr", "loss", "weights")] == ["0.1", "1e-6", "sigmoid+sft", "dddd"]
    missing = subprocess.run([sys.executable, "scripts/publish_results.py", str(tmp_path / "none"), str(out)],
                             capture_output=True, text=True, cwd=REPO_ROOT)
    assert missing.returncode == 2 and missing.stderr.strip().startswith("error: no finished stage")
