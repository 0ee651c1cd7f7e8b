"""Task classes, registered by environment name."""

from eval_agent.tasks.base import Task, split_parts
from eval_agent.tasks.sciworld import SciWorldTask

TASKS = {cls.env_name: cls for cls in (SciWorldTask,)}

__all__ = ["TASKS", "Task", "SciWorldTask", "split_parts"]
