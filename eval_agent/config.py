"""Task and agent configs (``eval_agent/configs/<kind>/<name>.json``), and the shared CLI frame of
the harness's commands: flag checks, and bad input reported in one line with an exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Tuple

from eval_agent.registry import ENVS, TASKS
from eval_agent.runner import RunAborted
from eto.io import read_json
from eto.pipeline.paths import config_name  # noqa: F401 (the harness's commands import it from here)

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def load_config(kind: str, name: str) -> dict:
    """``configs/<kind>/<name>.json``, or ``name`` itself if it is a path to a JSON file."""
    path = name if name.endswith(".json") else os.path.join(CONFIG_DIR, kind, f"{name}.json")
    if not os.path.isfile(path):
        choices = sorted(f[:-5] for f in os.listdir(os.path.join(CONFIG_DIR, kind)) if f.endswith(".json"))
        raise ValueError(f"unknown {kind} config {name!r} (choose from {', '.join(choices)}, or give a .json path)")
    config = read_json(path, "config file")
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object")
    if "extends" in config:  # a variant of another config: its fields, some replaced
        base = config.pop("extends")
        if path in _extending:
            raise ValueError(f"{path}: 'extends' forms a cycle")
        _extending.add(path)
        try:
            config = {**load_config(kind, base), **config}
        finally:
            _extending.discard(path)
    return config


_extending: set = set()  # configs whose 'extends' chain is being resolved (cycle check)


def load_task_config(name: str, expert: bool = False, baseline: Optional[str] = None) -> Tuple[dict, str]:
    """The task config and its environment's name; ``expert`` asks the env to load its expert,
    ``baseline`` to play one of its baselines."""
    config = load_config("task", name)
    env_name = config["env_class"]
    if env_name not in ENVS or env_name not in TASKS:
        raise ValueError(f"unknown env_class {env_name!r} (choose from {', '.join(sorted(ENVS))})")
    if expert:
        if not ENVS[env_name].has_expert():
            raise ValueError(f"{env_name} has no expert of its own")
        config["expert"] = True
    if baseline is not None:
        if baseline not in ENVS[env_name].BASELINES:
            raise ValueError(f"{env_name} has no baseline {baseline!r} (its baselines: "
                             f"{', '.join(ENVS[env_name].BASELINES) or 'none'})")
        config["baseline"] = baseline
    return config, env_name


def check_at_least_one(args: argparse.Namespace, *flags: str) -> None:
    for flag in flags:
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ValueError(f"--{flag} must be at least 1")


def run_cli(run_fn, args: argparse.Namespace) -> int:
    """Run a command; bad input and aborted runs end with one line and an exit code."""
    try:
        return run_fn(args)
    except KeyError as error:  # a config lacks a field the run needs
        print(f"error: missing config field {error.args[0]!r}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RunAborted as error:
        print(f"error: run aborted: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: finished episodes are saved; rerun the same command to continue", file=sys.stderr)
        sys.stderr.flush()
        os._exit(130)  # do not wait for episodes still in flight in worker threads
