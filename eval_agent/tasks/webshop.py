"""WebShop tasks: one shopping goal each, and the rules that make their split files.

    python scripts/make_splits.py webshop      # (re)writes data/webshop/{train,test}.json

A task is a goal index ("session") of the catalog in ``data/webshop`` (the official WebShop data,
or the catalog setup.sh generates offline); its id is the index, as in the original ETO's
WebShop trajectories. The split files depend on which catalog is there, so setup.sh writes them
next to it (they are not committed; a task config's ``data_dir`` names another catalog folder,
splits included):
- official data: ETO's goal lists (``eto_train_indices.json``, ``eto_test_indices.json``, fetched
  with the data): 1824 train entries (1823 distinct goals) and 200 test goals;
- generated catalog: test = goals 0-199, train = goals 200-2023 (1824), the same sizes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Dict, List, Optional

from eval_agent.tasks.base import DATA_DIR, Task

DEFAULT_DATA_DIR = os.path.join(DATA_DIR, "webshop")
NUM_TEST, NUM_TRAIN = 200, 1824


@dataclass(frozen=True)
class WebShopTask(Task):
    goal_index: int = 0
    asin: str = ""          # the goal's product: lets the env check that the catalog is the one split
    department: str = ""

    env_name = "webshop"
    splits = ("train", "test")
    expert_reward_field = "reward"   # expert records carry their own reward (they need not reach 1)
    expert_min_reward = 0.7          # and are kept from 0.7 up, as in the original ETO

    @property
    def category(self) -> str:
        return self.department

    missing_split_hint = (": run `bash setup.sh` (it prepares the WebShop catalog and its splits), or "
                          "`python scripts/make_splits.py webshop` for a catalog made by hand")

    @classmethod
    def split_path(cls, split: str, config: Optional[dict] = None) -> str:
        return os.path.join(data_dir_of(config), f"{split}.json")


def data_dir_of(config: Optional[dict]) -> str:
    """The catalog folder a task config names (``data_dir``), or data/webshop."""
    return (config or {}).get("data_dir") or DEFAULT_DATA_DIR


def _read_indices(path: str) -> List[int]:
    with open(path, encoding="utf-8") as f:
        return list(dict.fromkeys(int(i) for i in json.load(f)))  # ETO's train list repeats one goal


def generate_splits(data_dir: Optional[str] = None) -> Dict[str, List[WebShopTask]]:
    from eto_webshop import Catalog

    data_dir = data_dir or DEFAULT_DATA_DIR
    catalog = Catalog.load(data_dir)
    eto_lists = {s: os.path.join(data_dir, f"eto_{s}_indices.json") for s in WebShopTask.splits}
    if all(os.path.isfile(p) for p in eto_lists.values()):
        indices = {s: _read_indices(p) for s, p in eto_lists.items()}
    else:
        if len(catalog.goals) < NUM_TEST + NUM_TRAIN:
            raise ValueError(f"{data_dir} has {len(catalog.goals)} goals; the splits need {NUM_TEST + NUM_TRAIN}")
        indices = {"test": list(range(NUM_TEST)), "train": list(range(NUM_TEST, NUM_TEST + NUM_TRAIN))}
    splits = {}
    for split, goal_indices in indices.items():
        goals = [(i, catalog.goals[i]) for i in goal_indices if i < len(catalog.goals)]
        splits[split] = [WebShopTask(task_id=str(i), goal_index=i, asin=g.asin, department=g.category)
                         for i, g in goals]
    return splits
