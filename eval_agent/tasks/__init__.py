"""Task classes, registered by environment name."""

from eval_agent.tasks.alfworld import AlfWorldTask
from eval_agent.tasks.base import Task, split_parts
from eval_agent.tasks.sciworld import SciWorldTask
from eval_agent.tasks.webshop import WebShopTask

TASKS = {cls.env_name: cls for cls in (SciWorldTask, AlfWorldTask, WebShopTask)}

__all__ = ["TASKS", "Task", "AlfWorldTask", "SciWorldTask", "WebShopTask", "split_parts"]
