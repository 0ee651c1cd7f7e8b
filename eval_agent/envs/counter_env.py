"""The counter's env: the task turn names the target; "add 1" and "add 2" move the counter; the
episode succeeds on the target and fails past it. Its expert adds 2 while 2 or more are missing."""

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
        return f"Thought: {self.target - self.total} to go.\nAction: add {step}" if self.total < self.target else None


SPEC = EnvironmentSpec("counter", CounterTask, CounterEnv, generate_splits)
