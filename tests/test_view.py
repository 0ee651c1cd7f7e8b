"""eval_agent.view without a browser: what the page is built from, and bad input. The page in a
real browser: tests/test_eto_loop.py::test_the_run_viewer_in_a_real_browser."""

import json
import os
import re
import subprocess
import sys

from eto.pipeline.markers import write_marker
from eval_agent.view import build_page, first_divergence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _turns(*values):
    return [{"from": "gpt" if i % 2 == 0 else "human", "value": v} for i, v in enumerate(values)]


def test_first_divergence_is_the_first_turn_that_differs():
    assert first_divergence(_turns("a", "b", "c"), _turns("a", "b", "x")) == 2
    assert first_divergence(_turns("a"), _turns("z")) == 0
    assert first_divergence(_turns("a", "b"), _turns("a", "b", "c")) == 2  # one side stops first


def test_the_page_carries_every_episode_and_pair_and_escapes_what_would_end_its_script(tmp_path):
    folder = tmp_path / "outputs" / "policy" / "sciworld_test"
    folder.mkdir(parents=True)
    for i in range(3):
        record = {"meta": {"id": f"t{i}", "task": {"task_name": "boil"}, "reward": i / 2, "success": i == 2, "steps": 1,
                           "terminate_reason": "max_steps", "error": None, "task_turn": 0},
                  "conversations": [{"from": "human", "value": "Task: </script><b>x</b>"},
                                    {"from": "gpt", "value": "Thought: t\nAction: look"}]}
        (folder / f"t{i}.json").write_text(json.dumps(record))
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps([{"id": "t0", "prompt": _turns("p"), "chosen": _turns("a", "b"), "rejected": _turns("a", "c"),
                                  "chosen_reward": 1.0, "rejected_reward": 0.0}]))
    stages = tmp_path / "logs" / "stages"
    write_marker(str(stages), "eval_sft_test", 1, {"row": "SFT", "method": "sft", "round": "0", "split": "test",
                                                   "episodes": str(folder)})
    write_marker(str(stages), "round1_pairs", 1, {"row": "round_1", "pairs": str(pairs)})
    page = build_page(str(tmp_path / "logs"))
    payload = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S).group(1)
    data = json.loads(payload.replace("<\\/", "</"))
    [evaluation] = data["evaluations"]
    assert evaluation["name"] == "SFT" and sorted(e["id"] for e in evaluation["episodes"]) == ["t0", "t1", "t2"]
    assert evaluation["episodes"][0]["type"] == "boil"
    assert data["pairs"][0]["pairs"][0]["diverge"] == 1
    assert "</script><b>" not in payload  # the task text cannot end the data's script element


def test_a_folder_that_is_not_a_run_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "eval_agent.view", str(tmp_path)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "has no stages/ folder" in result.stderr
