"""ScienceWorld tasks, and the split files: the original ETO's task lists (default) or rules.

    python scripts/make_splits.py sciworld            # data/sciworld/{train,dev,test}.json from the lists
    python scripts/make_splits.py sciworld --rules    # every train variation, first 10 dev/test per type

Task ids are the original ETO's: ``<number>_<variation>`` (``13_150`` is find-non-living-thing,
variation 150), the number coming from its task-name table (``data/sciworld/task_numbers.json``).
Its published trajectories and preference pairs are keyed by these ids.

The original's lists (24 task types: all but the 3 inclined-plane, the 2 mendelian-genetics and
measure-melting-point-unknown-substance types) are kept as they are, quirks included:
- train: 1483 variations, the ones the original had expert trajectories for; 357 of them are
  dev-range variations;
- dev ("seen" test): 194 dev variations the original sampled; 54 of them are also in train;
- test ("unseen" test): the first 10 test variations of each type, 211 tasks.
The rule-based splits (``--rules``): every train variation (2286), the first 10 dev variations
per type (199), the same 211 test tasks. Split files list the types round-robin (variations in
order within a type), so the first K tasks cover K types.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Sequence, Tuple

from eval_agent.tasks.base import DATA_DIR, Task, round_robin
from eto.io import read_json, write_json_atomic

EXCLUDED_TYPES = (
    "inclined-plane-determine-angle",
    "inclined-plane-friction-named-surfaces",
    "inclined-plane-friction-unnamed-surfaces",
    "mendelian-genetics-known-plant",
    "mendelian-genetics-unknown-plant",
    "measure-melting-point-unknown-substance",
)
HELD_OUT_PER_TYPE = 10
TASK_NUMBERS_FILE = os.path.join(DATA_DIR, "sciworld", "task_numbers.json")
# The original's list files, as in its eval_agent/data/sciworld/ (and ../shared/data/eto/).
ORIGINAL_LISTS = {"train": "sciworld_train_indices.json", "dev": "sciworld_dev_indices.json",
                  "test": "sciworld_test_indices.json"}
ORIGINAL_NUMBERS = "sciworld_taskname2id.json"


@lru_cache(maxsize=None)
def task_numbers() -> Dict[str, int]:
    """ScienceWorld task name (short form, as ``scienceworld`` names it) -> the original's number."""
    return read_json(TASK_NUMBERS_FILE)


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
        numbers = task_numbers()
        if task_name not in numbers:
            raise ValueError(f"unknown ScienceWorld task {task_name!r}")
        return cls(task_id=f"{numbers[task_name]}_{variation}", task_name=task_name, variation=variation)


def short_name(original_name: str) -> str:
    """The original's long task name -> scienceworld's: ``task-6-lifespan-(longest-lived)`` ->
    ``lifespan-longest-lived`` (its table also misspells mendelian)."""
    name = re.sub(r"^task-\d+a?-", "", original_name).replace("(", "").replace(")", "")
    return name.replace("mendellian", "mendelian")


def read_original_lists(lists_dir: str) -> Tuple[Dict[str, int], Dict[str, List[Tuple[str, int]]]]:
    """(short name -> number, split -> [(short name, variation)]) from the original's list files."""
    def read(name: str):
        path = os.path.join(lists_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is missing: give --lists_dir, the folder with the original ETO's "
                                    "task lists (../shared/data/eto, or the original's eval_agent/data/sciworld)")
        return read_json(path)

    numbers = {short_name(name): number for name, number in read(ORIGINAL_NUMBERS).items()}
    lists = {split: [(short_name(name), int(variation)) for name, variation in read(file)]
             for split, file in ORIGINAL_LISTS.items()}
    return numbers, lists


def _ordered(pairs: Sequence[Tuple[str, int]]) -> List[SciWorldTask]:
    tasks = [SciWorldTask.make(name, variation) for name, variation in sorted(set(pairs))]
    return round_robin(tasks, lambda t: t.task_name)


def generate_splits(lists_dir: str, rules: bool = False) -> Dict[str, List[SciWorldTask]]:
    """The original's splits, converted (also (re)writes the task-number table); or, with
    ``rules``, the rule-based ones."""
    if rules:
        return generate_rule_splits()
    numbers, lists = read_original_lists(lists_dir)
    write_json_atomic(TASK_NUMBERS_FILE, dict(sorted(numbers.items(), key=lambda item: item[1])), newline=True)
    task_numbers.cache_clear()
    return {split: _ordered(pairs) for split, pairs in lists.items()}


def generate_rule_splits() -> Dict[str, List[SciWorldTask]]:
    """Every train variation; the first 10 dev and test variations of each type."""
    from scienceworld import ScienceWorldEnv

    env = ScienceWorldEnv("", envStepLimit=10)
    splits: Dict[str, List[Tuple[str, int]]] = {"train": [], "dev": [], "test": []}
    try:
        for name in sorted(env.get_task_names()):
            if name in EXCLUDED_TYPES:
                continue
            env.load(name, 0, "easy")
            splits["train"] += [(name, v) for v in env.get_variations_train()]
            splits["dev"] += [(name, v) for v in sorted(env.get_variations_dev())[:HELD_OUT_PER_TYPE]]
            splits["test"] += [(name, v) for v in sorted(env.get_variations_test())[:HELD_OUT_PER_TYPE]]
    finally:
        env.close()
    return {split: _ordered(pairs) for split, pairs in splits.items()}
