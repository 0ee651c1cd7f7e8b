"""Task classes, one module per environment (its plug-in ``SPEC`` lives beside its env class, in
``eval_agent/envs/``). The built-in classes are re-exported for convenience."""

from eval_agent.tasks.alfworld import AlfWorldTask
from eval_agent.tasks.base import Task, split_parts
from eval_agent.tasks.sciworld import SciWorldTask
from eval_agent.tasks.webshop import WebShopTask

__all__ = ["Task", "AlfWorldTask", "SciWorldTask", "WebShopTask", "split_parts"]
