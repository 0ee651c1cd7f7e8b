"""Tasks: one record per playable episode, with a stable global id, loaded from split files."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import ClassVar, Dict, List, Sequence, Type, TypeVar

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA_DIR = os.path.join(REPO_ROOT, "data")

T = TypeVar("T", bound="Task")


@dataclass(frozen=True)
class Task:
    """A task of some environment. Subclasses add the fields their env needs to load it."""

    task_id: str

    env_name: ClassVar[str] = ""
    splits: ClassVar[Sequence[str]] = ("train", "dev", "test")

    @classmethod
    def split_path(cls, split: str) -> str:
        return os.path.join(DATA_DIR, cls.env_name, f"{split}.json")

    @classmethod
    def load_split(cls: Type[T], split: str) -> List[T]:
        if split not in cls.splits:
            raise ValueError(f"unknown split {split!r} for {cls.env_name} (choose from {', '.join(cls.splits)})")
        path = cls.split_path(split)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"split file {path} is missing")
        with open(path, encoding="utf-8") as f:
            return [cls(**record) for record in json.load(f)]

    def to_dict(self) -> Dict:
        return asdict(self)


def write_split(path: str, tasks: Sequence[Task]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".partial", "w", encoding="utf-8") as f:
        json.dump([t.to_dict() for t in tasks], f, indent=1)
        f.write("\n")
    os.replace(path + ".partial", path)


def split_parts(items: Sequence, part_num: int, part_idx: int) -> List:
    """Part ``part_idx`` of ``part_num`` contiguous, near-equal parts that cover ``items`` once."""
    if part_num < 1 or not 0 <= part_idx < part_num:
        raise ValueError(f"need 0 <= --part_idx < --part_num, got part_idx={part_idx}, part_num={part_num}")
    size, extra = divmod(len(items), part_num)
    start = part_idx * size + min(part_idx, extra)
    return list(items[start: start + size + (1 if part_idx < extra else 0)])
