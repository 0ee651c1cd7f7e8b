"""Adding an environment: the files docs/layout.md lists, and nothing else, make a working plug-in.

The toy environment shipped with the harness ("counter": reach a number by adding 1s and 2s) is
such a plug-in. A copy of the harness without it gets it back by exactly the files of docs/layout.md's
"Adding an environment"; then the stock commands run on it: split files, the expert's
trajectories, an exploration by a real FastChat worker (the tiny random model of conftest, which
fails), and the preference pairs between the two.
"""

import json
import os
import shutil
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN_FILES = ("eval_agent/tasks/counter.py", "eval_agent/envs/counter_env.py",
                "eval_agent/prompt/instructions/counter.txt", "eval_agent/prompt/icl_examples/counter.json",
                "eval_agent/configs/task/counter.json")


def _run(args, cwd):
    # The copy, not the installed project, is what runs (PYTHONPATH comes before the editable install).
    env = dict(os.environ, PYTHONPATH=str(cwd))
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (args, result.stdout[-1500:], result.stderr[-1500:])
    return result.stdout


def test_the_toy_environment_added_by_the_readme_list_runs_through_every_command(tmp_path, tiny_servers):
    root = tmp_path / "repo"
    for part in ("eval_agent", "eto", "scripts"):
        shutil.copytree(os.path.join(REPO_ROOT, part), root / part,
                        ignore=shutil.ignore_patterns("__pycache__", "original", "counter*"))
    shutil.copy(os.path.join(REPO_ROOT, "construct_preference.py"), root)
    unknown = subprocess.run([sys.executable, "scripts/make_splits.py", "counter"], cwd=root, capture_output=True,
                             text=True, env=dict(os.environ, PYTHONPATH=str(root)))
    assert unknown.returncode != 0  # the copy has no counter
    for relative in PLUGIN_FILES:
        shutil.copy(os.path.join(REPO_ROOT, relative), root / relative)

    assert "train: 6 tasks" in _run(["scripts/make_splits.py", "counter"], root)
    assert json.loads((root / "data" / "counter" / "test.json").read_text())[0] == {"task_id": "n9", "target": 9}

    out = _run(["-m", "eval_agent.expert_trajectories", "--task", "counter", "--split", "train"], root)
    assert "kept 6 of 6 episodes" in out
    experts = json.loads((root / "data" / "counter_sft.json").read_text())
    assert experts[0]["conversations"][2]["value"] == "Reach 3. The counter is at 0."

    _run(["-m", "eval_agent.main", "--agent_config", "fastchat", "--model_name", tiny_servers.model_name,
          "--controller_address", tiny_servers.controller_url, "--exp_config", "counter", "--split", "train",
          "--max_new_tokens", "16", "--exp_name", "_train"], root)
    out = _run(["construct_preference.py", "--task", "counter", "--golden_traj_path", "data/counter_sft.json",
                "--output_path", "pm.json", "--episodes_dir", f"outputs/{tiny_servers.model_name}/counter_train"], root)
    pairs = json.loads((root / "pm.json").read_text())
    assert "lose: 6" in out and len(pairs) == 6  # the random model never reaches the target
    assert pairs[0]["prompt"][2]["value"] == "Reach 3. The counter is at 0."
