"""WebShop tasks: one shopping goal each, and the rules that make their split files.

    python scripts/make_splits.py webshop      # (re)writes data/webshop/{train,test}.json

A task is a goal index ("session") of the catalog in ``data/webshop`` (the official WebShop data,
or the catalog setup.sh generates offline); its id is the index, as in the original ETO's
WebShop trajectories. The split files depend on which catalog is there, so setup.sh writes them
next to it (they are not committed; a task config's ``data_dir`` names another catalog folder,
splits included):
- official data: the original ETO's goal lists (``data/webshop_original_splits.json``): train
  lists 1824 entries, 1823 distinct goals (goal 4116 twice; it is played once here, since episodes
  are keyed by goal index, as the original's files were), 21 of them also test goals; test 200
  goals; test_500, a larger test list disjoint from train that the original's scripts never used;
- generated catalog: test = goals 0-199, train = goals 200-2023 (1824, the same size), test_500 =
  the goals after those (476 in the default 2,500-goal catalog).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional

from eval_agent.tasks.base import DATA_DIR, Task
from eto.io import read_json

DEFAULT_DATA_DIR = os.path.join(DATA_DIR, "webshop")
ORIGINAL_SPLITS = os.path.join(DATA_DIR, "webshop_original_splits.json")
NUM_TEST, NUM_TRAIN, NUM_TEST_500 = 200, 1824, 500


@dataclass(frozen=True)
class WebShopTask(Task):
    goal_index: int = 0
    asin: str = ""          # the goal's product: lets the env check that the catalog is the one split
    department: str = ""

    env_name = "webshop"
    splits = ("train", "test", "test_500")
    expert_reward_field = "reward"   # expert records carry their own reward (they need not reach 1)
    expert_min_reward = 0.7          # and are kept from 0.7 up, as in the original ETO

    @property
    def category(self) -> str:
        return self.department

    @classmethod
    def split_path(cls, split: str, config: Optional[dict] = None) -> str:
        return os.path.join(data_dir_of(config), f"{split}.json")


def data_dir_of(config: Optional[dict]) -> str:
    """The catalog folder a task config names (``data_dir``), or data/webshop."""
    return (config or {}).get("data_dir") or DEFAULT_DATA_DIR


def original_indices() -> Dict[str, List[int]]:
    """split -> the original's goal indices, each goal once (its train list repeats one)."""
    lists = read_json(ORIGINAL_SPLITS)
    return {split: list(dict.fromkeys(int(i) for i in lists[split])) for split in WebShopTask.splits}


def generate_splits(data_dir: Optional[str] = None) -> Dict[str, List[WebShopTask]]:
    from eto_webshop import Catalog

    data_dir = data_dir or DEFAULT_DATA_DIR
    catalog = Catalog.load(data_dir)
    indices = original_indices()
    if len(catalog.goals) <= max(i for split in indices.values() for i in split):  # not the official goals
        if len(catalog.goals) < NUM_TEST + NUM_TRAIN:
            raise ValueError(f"{data_dir} has {len(catalog.goals)} goals; the splits need {NUM_TEST + NUM_TRAIN}")
        end = NUM_TEST + NUM_TRAIN
        indices = {"test": list(range(NUM_TEST)), "train": list(range(NUM_TEST, end)),
                   "test_500": list(range(end, min(end + NUM_TEST_500, len(catalog.goals))))}
    splits = {}
    for split, goal_indices in indices.items():
        goals = [(i, catalog.goals[i]) for i in goal_indices if i < len(catalog.goals)]
        splits[split] = [WebShopTask(task_id=str(i), goal_index=i, asin=g.asin, department=g.category)
                         for i, g in goals]
    return splits
