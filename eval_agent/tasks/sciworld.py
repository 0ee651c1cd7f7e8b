"""ScienceWorld tasks and the rules that generate their split files.

    python scripts/make_splits.py sciworld      # (re)writes data/sciworld/{train,dev,test}.json

Task types: the 30 ScienceWorld types minus the 3 inclined-plane types, the 2 mendelian-genetics
types and measure-melting-point-unknown-substance, as in the original ETO (24 types).
- train: every train variation of those types;
- dev ("seen" test): the first 10 dev variations of each type;
- test ("unseen" test): the first 10 test variations of each type.
Split files list the types round-robin, so the first K tasks cover K types. The original ETO sampled its dev/test variations at random and trained on the 1483 train
variations that had expert trajectories; these rules are deterministic instead, and give 2286 /
199 / 211 tasks with scienceworld 1.2.3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

from eval_agent.tasks.base import Task, round_robin

EXCLUDED_TYPES = (
    "inclined-plane-determine-angle",
    "inclined-plane-friction-named-surfaces",
    "inclined-plane-friction-unnamed-surfaces",
    "mendelian-genetics-known-plant",
    "mendelian-genetics-unknown-plant",
    "measure-melting-point-unknown-substance",
)
HELD_OUT_PER_TYPE = 10


@dataclass(frozen=True)
class SciWorldTask(Task):
    task_name: str = ""
    variation: int = 0

    env_name = "sciworld"

    @property
    def category(self) -> str:
        return self.task_name

    @classmethod
    def make(cls, task_name: str, variation: int) -> "SciWorldTask":
        return cls(task_id=f"{task_name}_{variation}", task_name=task_name, variation=variation)


def generate_splits() -> Dict[str, List[SciWorldTask]]:
    from scienceworld import ScienceWorldEnv

    env = ScienceWorldEnv("", envStepLimit=10)
    splits: Dict[str, List[SciWorldTask]] = {"train": [], "dev": [], "test": []}
    try:
        for name in sorted(env.get_task_names()):
            if name in EXCLUDED_TYPES:
                continue
            env.load(name, 0, "easy")
            splits["train"] += [SciWorldTask.make(name, v) for v in sorted(env.get_variations_train())]
            splits["dev"] += [SciWorldTask.make(name, v) for v in sorted(env.get_variations_dev())[:HELD_OUT_PER_TYPE]]
            splits["test"] += [SciWorldTask.make(name, v) for v in sorted(env.get_variations_test())[:HELD_OUT_PER_TYPE]]
    finally:
        env.close()
    return {split: round_robin(tasks, lambda t: t.task_name) for split, tasks in splits.items()}
