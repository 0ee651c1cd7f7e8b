"""The counter: a toy environment (reach a number by adding 1s and 2s). It is the smallest
complete plug-in (its five files are docs/layout.md's "Adding an environment" list) and the environment
of the run's mechanics tests: episodes take milliseconds and need no engine."""

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
    make = lambda n: CounterTask(task_id=f"n{n}", target=n)  # noqa: E731
    return {"train": [make(n) for n in range(3, 9)], "test": [make(n) for n in range(9, 12)]}
