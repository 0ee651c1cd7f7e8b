"""Tasks: one record per playable episode, with a stable global id, loaded from split files."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Callable, ClassVar, Dict, List, Optional, Sequence, Type, TypeVar

from eto.io import read_json, write_json_atomic

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA_DIR = os.path.join(REPO_ROOT, "data")

T = TypeVar("T", bound="Task")


@dataclass(frozen=True)
class Task:
    """A task of some environment. Subclasses add the fields their env needs to load it."""

    task_id: str

    env_name: ClassVar[str] = ""
    splits: ClassVar[Sequence[str]] = ("train", "dev", "test")

    # How construct_preference pairs an explored episode with the expert's (the original ETO's rules).
    # The expert's reward: 1.0, or the value of this field of its SFT record (WebShop keeps "reward").
    expert_reward_field: ClassVar[Optional[str]] = None
    # Agent rewards become 1.0 (success) / 0.0 before comparing (ALFWorld).
    binary_reward: ClassVar[bool] = False
    # The rejected side keeps at most the expert's agent turns plus this many (None: all of it).
    rejected_extra_turns: ClassVar[Optional[int]] = 5
    # Which expert episodes become SFT data: successes (None), or those reaching this reward (WebShop).
    expert_min_reward: ClassVar[Optional[float]] = None

    @classmethod
    def split_path(cls, split: str, config: Optional[dict] = None) -> str:
        """The split file; ``config`` is the task config (WebShop keeps splits beside its catalog)."""
        return os.path.join(DATA_DIR, cls.env_name, f"{split}.json")

    @classmethod
    def load_split(cls: Type[T], split: str, config: Optional[dict] = None) -> List[T]:
        if split not in cls.splits:
            raise ValueError(f"unknown split {split!r} for {cls.env_name} (choose from {', '.join(cls.splits)})")
        path = cls.split_path(split, config)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"split file {path} is missing: run `bash setup.sh`, or "
                                    f"`python scripts/make_splits.py {cls.env_name}`")
        return [cls(**record) for record in read_json(path, "split file")]

    @classmethod
    def load_tasks(cls: Type[T], split: str, config: Optional[dict] = None) -> List[T]:
        """The tasks of ``split`` that a task config selects.

        Optional config fields: ``"task_filter": {field: [values]}`` keeps the tasks whose field
        has one of the values; ``"max_tasks": {split: K}`` keeps the first K of those. A preset
        such as ``sciworld_demo.json`` uses them to name a small, fixed subset.
        ``"derived_splits": {name: {"from": split, "skip": S, "count": K}}`` names tasks S..S+K-1
        of another split (after the filter): pilot runs use it to hold out train tasks, so that
        sizes and learning rates are chosen without looking at a test split.
        """
        config = config or {}
        derived = (config.get("derived_splits") or {}).get(split)
        if derived is not None:
            try:
                source, skip, count = derived["from"], int(derived.get("skip", 0)), int(derived["count"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f'derived split {split!r} needs "from" (a split), "count" and optionally "skip"') from None
            if source not in cls.splits:
                raise ValueError(f"derived split {split!r} comes from unknown split {source!r}")
            return cls.load_tasks(source, {**config, "max_tasks": {}})[skip: skip + count]
        tasks = cls.load_split(split, config)
        filters, limits = config.get("task_filter") or {}, config.get("max_tasks") or {}
        if not isinstance(filters, dict) or not all(isinstance(v, list) for v in filters.values()):
            raise ValueError('task_filter must map task fields to lists of values, e.g. {"task_name": ["boil"]}')
        if not isinstance(limits, dict) or not all(isinstance(v, int) and v >= 0 for v in limits.values()):
            raise ValueError('max_tasks must map splits to counts, e.g. {"train": 12, "test": 8}')
        for name, values in filters.items():
            if name not in cls.__dataclass_fields__:
                raise ValueError(f"task_filter field {name!r} is not a field of {cls.env_name} tasks")
            tasks = [t for t in tasks if getattr(t, name) in set(values)]
        limit = limits.get(split)
        return tasks[:limit] if limit is not None else tasks

    @property
    def category(self) -> str:
        """The task type that summaries break results down by."""
        return "all"

    @classmethod
    def expert_key(cls, record: dict) -> str:
        """The task id an expert SFT record belongs to (construct_preference pairs by it)."""
        return str(record["id"])

    def to_dict(self) -> Dict:
        return asdict(self)


def write_split(path: str, tasks: Sequence[Task]) -> None:
    write_json_atomic(path, [t.to_dict() for t in tasks], newline=True)


def split_parts(items: Sequence, part_num: int, part_idx: int) -> List:
    """Part ``part_idx`` of ``part_num`` contiguous, near-equal parts that cover ``items`` once."""
    if part_num < 1 or not 0 <= part_idx < part_num:
        raise ValueError(f"need 0 <= --part_idx < --part_num, got part_idx={part_idx}, part_num={part_num}")
    size, extra = divmod(len(items), part_num)
    start = part_idx * size + min(part_idx, extra)
    return list(items[start: start + size + (1 if part_idx < extra else 0)])


def round_robin(tasks: Sequence[T], key: Callable[[T], str]) -> List[T]:
    """Interleave task types (the first task of every type, then the second, ...), so that the
    first K tasks of a split (``--max_tasks K``) cover K different types."""
    by_type: Dict[str, List[T]] = {}
    for task in tasks:
        by_type.setdefault(key(task), []).append(task)
    queues = [by_type[name] for name in sorted(by_type)]
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]
