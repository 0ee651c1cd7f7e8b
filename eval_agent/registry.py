"""The environments this harness knows, found by their plug-in spec.

An environment is one plug-in: a module in ``eval_agent/envs/`` that declares
``SPEC = EnvironmentSpec(...)`` (``eval_agent.plugin``), naming its task class (split files and pairing rules), its env
class (episodes; an ``expert_reply`` makes it the expert) and its split generator. Its prompt
files (``eval_agent/prompt/instructions/<name>.txt``, ``icl_examples/<name>.json``) and task
config (``eval_agent/configs/task/<name>.json``) are found by its name. Nothing else lists it:
``ENVIRONMENTS`` is built by importing every module of ``eval_agent/envs/`` and collecting
their specs (docs/layout.md, "Adding an environment").
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Dict, Type

from eval_agent.envs.base import BaseEnv
from eval_agent.plugin import EnvironmentSpec
from eval_agent.tasks.base import Task


def discover() -> Dict[str, EnvironmentSpec]:
    import eval_agent.envs as package

    specs: Dict[str, EnvironmentSpec] = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(package.__path__)):
        spec = getattr(importlib.import_module(f"{package.__name__}.{module}"), "SPEC", None)
        if isinstance(spec, EnvironmentSpec):
            if spec.name in specs:
                raise ValueError(f"two environment plug-ins are named {spec.name!r}")
            specs[spec.name] = spec
    return specs


ENVIRONMENTS: Dict[str, EnvironmentSpec] = discover()
TASKS: Dict[str, Type[Task]] = {name: spec.task_class for name, spec in ENVIRONMENTS.items()}
ENVS: Dict[str, Type[BaseEnv]] = {name: spec.env_class for name, spec in ENVIRONMENTS.items()}
