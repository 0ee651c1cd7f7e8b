"""Task classes, registered by environment name."""

from eval_agent.tasks.alfworld import AlfWorldTask
from eval_agent.tasks.base import Task, split_parts
from eval_agent.tasks.sciworld import SciWorldTask

TASKS = {cls.env_name: cls for cls in (SciWorldTask, AlfWorldTask)}

__all__ = ["TASKS", "Task", "AlfWorldTask", "SciWorldTask", "split_parts"]
