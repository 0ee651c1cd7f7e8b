"""Adding an environment: the files the README lists, and nothing else, make a working plug-in.

A copy of the harness gets a toy environment ("counter": reach a number by adding 1s and 2s) by
exactly the files of the README's "Adding an environment"; then the stock commands run on it:
split files, the expert's trajectories, an exploration by a real FastChat worker (the tiny
random model of conftest, which fails), and the preference pairs between the two.
"""

import json
import os
import shutil
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOY_FILES = {
    "eval_agent/tasks/counter.py": '''
from dataclasses import dataclass
from eval_agent.tasks.base import Task


@dataclass(frozen=True)
class CounterTask(Task):
    target: int = 0
    env_name = "counter"
    splits = ("train", "test")
    rejected_extra_turns = 2

    @property
    def category(self):
        return "odd" if self.target % 2 else "even"


def generate_splits():
    make = lambda n: CounterTask(task_id=f"n{n}", target=n)
    return {"train": [make(n) for n in range(3, 9)], "test": [make(n) for n in range(9, 12)]}
''',
    "eval_agent/envs/counter_env.py": '''
from eval_agent.envs.base import BaseEnv
from eval_agent.plugin import EnvironmentSpec
from eval_agent.tasks.counter import CounterTask, generate_splits


class CounterEnv(BaseEnv):
    def _reset(self, task):
        self.target, self.total, self.max_steps = task.target, 0, self.config["max_steps"]
        return f"Reach {task.target}. The counter is at 0."

    def _act(self, action):
        if action not in ("add 1", "add 2"):
            return "Observation: Nothing happens."
        self.total += int(action[-1])
        if self.total == self.target:
            self.state.reward = 1.0
            self.state.finish("success", success=True)
        elif self.total > self.target:
            self.state.finish("task_failed")
        return f"Observation: The counter is at {self.total}."

    def expert_reply(self):
        step = 2 if self.target - self.total >= 2 else 1
        return f"Thought: {self.target - self.total} to go.\\nAction: add {step}" if self.total < self.target else None


SPEC = EnvironmentSpec("counter", CounterTask, CounterEnv, generate_splits)
''',
    "eval_agent/prompt/instructions/counter.txt": "Reach the number. Reply with Thought: ... and Action: add 1 or add 2.\n",
    "eval_agent/prompt/icl_examples/counter.json": json.dumps([{"messages": [
        {"role": "user", "content": "Reach 2. The counter is at 0."},
        {"role": "assistant", "content": "Thought: 2 to go.\nAction: add 2"}]}]),
    "eval_agent/configs/task/counter.json": json.dumps({"env_class": "counter", "num_examples": 1, "max_steps": 6}),
}


def _run(args, cwd):
    # The copy, not the installed project, is what runs (PYTHONPATH comes before the editable install).
    env = dict(os.environ, PYTHONPATH=str(cwd))
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (args, result.stdout[-1500:], result.stderr[-1500:])
    return result.stdout


def test_a_toy_environment_added_by_the_readme_list_runs_through_every_command(tmp_path, tiny_servers):
    root = tmp_path / "repo"
    for part in ("eval_agent", "eto", "scripts"):
        shutil.copytree(os.path.join(REPO_ROOT, part), root / part, ignore=shutil.ignore_patterns("__pycache__", "original"))
    shutil.copy(os.path.join(REPO_ROOT, "construct_preference.py"), root)
    for relative, text in TOY_FILES.items():
        (root / relative).write_text(text)

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
