"""The plug-in spec of an environment (see ``eval_agent.registry``, which collects them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence, Type

from eval_agent.envs.base import BaseEnv
from eval_agent.tasks.base import Task


@dataclass(frozen=True)
class EnvironmentSpec:
    name: str                      # the task configs' "env_class"; names the prompt files
    task_class: Type[Task]         # tasks, split files, pairing rules (its class attributes)
    env_class: Type[BaseEnv]       # plays episodes; its expert_reply, if it has one, is the expert
    # (**options) -> {split: tasks} for scripts/make_splits.py; options it accepts are listed below
    generate_splits: Callable[..., Dict[str, List[Task]]]
    split_options: Sequence[str] = field(default=())   # of: data_dir, lists_dir, rules

    def __post_init__(self):
        if self.task_class.env_name != self.name:
            raise ValueError(f"{self.task_class.__name__}.env_name is {self.task_class.env_name!r}, "
                             f"not the spec's name {self.name!r}")
