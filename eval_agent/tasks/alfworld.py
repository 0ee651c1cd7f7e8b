"""ALFWorld tasks (TextWorld games from ALFRED scenes) and the rules that make their split files.

    python scripts/make_splits.py alfworld      # (re)writes data/alfworld/{train,dev,test}.json

A task is one game: a folder holding ``game.tw-pddl`` (the PDDL problem, domain and grammar),
``traj_data.json`` and, for train games, ``gt_traj.json`` (a winning walkthrough). Its id is
the game folder's name (``trial_T...``), unique in the dataset, which is also how the original
ETO keyed ALFWorld trajectories.
- train: the solvable train games (3554 in ALFWorld 2.1.1);
- dev ("seen" test): the solvable valid_seen games (140);
- test ("unseen" test): the 134 valid_unseen games the original ETO lists
  (``alfworld_gamefile_id.txt``, its ``gamefile_id.txt``), which are exactly the solvable ones.
These are the games ALFWorld's own loader plays (``solvable: true``). The original explored the
first 3321 train games of that loader, in an order that depends on the file system; here every
solvable train game is a task. Split files list the six task types round-robin, so the first K
tasks cover them all.

Game files are found under the ALFWorld data folder, ``data/alfworld`` (setup.sh unpacks or
downloads the games there), or the ``data_dir`` of the task config. (Not ``$ALFWORLD_DATA``:
importing ``alfworld`` sets that to its own default.)
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Dict, List, Optional

from eval_agent.tasks.base import DATA_DIR, Task, round_robin
from eto.io import read_json

# Our split names -> the dataset's folder names.
SPLIT_FOLDERS = {"train": "train", "dev": "valid_seen", "test": "valid_unseen"}
GAME_VERSION = "json_2.1.1"
ORIGINAL_TEST_LIST = "alfworld_gamefile_id.txt"  # in the original ETO's task lists (../shared/data/eto)


DEFAULT_DATA_DIR = os.path.join(DATA_DIR, "alfworld")


@dataclass(frozen=True)
class AlfWorldTask(Task):
    # The game file, relative to the ALFWorld data folder (json_2.1.1/<split>/<type-...>/<trial>/game.tw-pddl).
    game_file: str = ""
    task_type: str = ""

    env_name = "alfworld"
    binary_reward = True          # the original compares won/lost, not partial credit
    rejected_extra_turns = None   # and keeps the whole failed episode as the rejected side

    @property
    def category(self) -> str:
        return self.task_type

    @classmethod
    def load_tasks(cls, split: str, config: Optional[dict] = None) -> List["AlfWorldTask"]:
        tasks = super().load_tasks(split, config)
        data_dir = (config or {}).get("data_dir") or DEFAULT_DATA_DIR
        if tasks and not os.path.isfile(os.path.join(data_dir, tasks[0].game_file)):
            raise FileNotFoundError(f"the ALFWorld games are missing from {data_dir}: run `bash setup.sh` "
                                    "to unpack or download them")
        return tasks

    @classmethod
    def expert_key(cls, record: dict) -> str:
        # Published ETO records carry the game folder in "game_file"; ours use it as the id too.
        game_file = record.get("game_file")
        if isinstance(game_file, str) and game_file:
            parts = [p for p in game_file.replace("\\", "/").split("/") if p and p != "game.tw-pddl"]
            return parts[-1]
        return str(record["id"])


def read_original_test_list(lists_dir: str) -> List[str]:
    """The original's unseen test games: ``<type folder>/<trial folder>`` lines."""
    path = os.path.join(lists_dir, ORIGINAL_TEST_LIST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: give --lists_dir, the folder with the original ETO's task lists")
    with open(path, encoding="utf-8") as f:
        return [line.strip().strip("/") for line in f if line.strip()]


def generate_splits(lists_dir: Optional[str] = None, data_dir: Optional[str] = None) -> Dict[str, List[AlfWorldTask]]:
    """The solvable games of each split; with ``lists_dir`` (when it exists), test is checked
    against (and restricted to) the original's list, and any listed game missing here is an error."""
    data_dir = data_dir or DEFAULT_DATA_DIR
    if lists_dir and not os.path.isdir(lists_dir):
        lists_dir = None
    root = os.path.join(data_dir, GAME_VERSION)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root} is missing: run `bash setup.sh` to unpack or download the ALFWorld games")
    splits = {}
    for split, folder in SPLIT_FOLDERS.items():
        tasks = []
        for game in sorted(glob.glob(os.path.join(root, folder, "*", "*", "game.tw-pddl"))):
            if not read_json(game).get("solvable"):
                continue
            game_dir = os.path.dirname(game)
            task_type = read_json(os.path.join(game_dir, "traj_data.json"))["task_type"]
            tasks.append(AlfWorldTask(task_id=os.path.basename(game_dir), game_file=os.path.relpath(game, data_dir),
                                      task_type=task_type))
        if len({t.task_id for t in tasks}) != len(tasks):
            raise ValueError(f"{folder}: two games share a folder name; ids would collide")
        if split == "test" and lists_dir:
            listed = {entry.split("/")[-1] for entry in read_original_test_list(lists_dir)}
            missing = listed - {t.task_id for t in tasks}
            if missing:
                raise ValueError(f"{len(missing)} games of the original's test list are not solvable "
                                 f"{folder} games here, e.g. {sorted(missing)[0]}")
            tasks = [t for t in tasks if t.task_id in listed]
        splits[split] = round_robin(tasks, lambda t: t.task_type)
    return splits
