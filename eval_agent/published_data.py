"""The original ETO's published expert trajectories, checked against this project's tasks.

Published records are keyed the original's way: ScienceWorld ``<number>_<variation>``, WebShop
the goal index, ALFWorld a running number plus the game file. ``map_records`` gives every record
the id of the task it belongs to here (ALFWorld: the game folder, from ``game_file``, or else
by its task text), and lists the records that belong to no task of the split. A download where
under ``MIN_COVERAGE`` of the records map is the wrong data for these splits, and is refused.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Type

from eval_agent.registry import TASKS
from eval_agent.tasks.base import Task
from eto.io import DataError, read_json_or_none
from eto.records import load_sft_data, write_sft_data

MIN_COVERAGE = 0.9
TASK_TURN = 2  # instruction, "OK", then the task


@dataclass
class Mapping:
    records: List[dict]                        # the mapped records, ``id`` = the task id here
    unmapped: List[str] = field(default_factory=list)  # original ids of records that fit no task
    by_text: int = 0                           # records placed by their task text

    @property
    def coverage(self) -> float:
        total = len(self.records) + len(self.unmapped)
        return len(self.records) / total if total else 0.0


def normalize(text: str) -> str:
    return " ".join(text.split())


def task_text_index(episode_dirs: Sequence[str]) -> Dict[str, str]:
    """Task turn text (whitespace folded) -> task id, from saved episodes (e.g. the regenerated
    expert's, ``outputs/expert/<task>_train``), for records whose ids say nothing here."""
    index: Dict[str, str] = {}
    for folder in episode_dirs:
        for path in glob.glob(os.path.join(folder, "[!_]*.json")):
            record = read_json_or_none(path)
            try:
                meta = record["meta"]
                index[normalize(record["conversations"][meta["task_turn"]]["value"])] = str(meta["id"])
            except (KeyError, IndexError, TypeError):
                continue
    return index


def map_records(task_cls: Type[Task], records: Sequence[dict], tasks: Sequence[Task],
                text_index: Optional[Dict[str, str]] = None) -> Mapping:
    ids = {t.task_id for t in tasks}
    mapping, taken = Mapping(records=[]), set()
    for record in records:
        task_id = task_cls.expert_key(record)
        placed_by_text = False
        if task_id not in ids and text_index:
            turns = record.get("conversations") or []
            text = turns[TASK_TURN].get("value", "") if len(turns) > TASK_TURN else ""
            task_id, placed_by_text = text_index.get(normalize(text), task_id), True
        if task_id not in ids or task_id in taken:
            mapping.unmapped.append(str(record.get("id")))
            continue
        taken.add(task_id)
        mapping.by_text += placed_by_text
        mapped = dict(record, id=task_id)
        if str(record.get("id")) != task_id:
            mapped["original_id"] = record.get("id")
        mapping.records.append(mapped)
    return mapping


def describe(env_name: str, split: str, mapping: Mapping) -> str:
    text = (f"{env_name}: {len(mapping.records)} of {len(mapping.records) + len(mapping.unmapped)} published "
            f"records ({mapping.coverage:.0%}) map onto {split} tasks")
    if mapping.by_text:
        text += f" ({mapping.by_text} by their task text)"
    if mapping.unmapped:
        text += f"; unmapped: {', '.join(mapping.unmapped[:5])}{' ...' if len(mapping.unmapped) > 5 else ''}"
    return text


def check_published_file(env_name: str, path: str, episode_dirs: Sequence[str] = ()) -> str:
    """Validate the published SFT file ``path`` and give each record the id of its train task here
    (rewriting the file if any changed); returns the report line. Raises ``DataError`` when under
    ``MIN_COVERAGE`` of the records fit the train split."""
    records = load_sft_data(path)
    mapping = map_records(TASKS[env_name], records, TASKS[env_name].load_split("train"),
                          task_text_index([d for d in episode_dirs if os.path.isdir(d)]))
    line = describe(env_name, "train", mapping)
    if mapping.coverage < MIN_COVERAGE:
        raise DataError(f"{line}; under {MIN_COVERAGE:.0%}: these are not trajectories of this project's train split")
    if mapping.unmapped or any("original_id" in r for r in mapping.records):
        write_sft_data(path, mapping.records)
    return line
