"""run_eto.sh's command line -> the run's settings, checked up front: every mistake is one line
that names the flag, before anything starts or is written."""

from __future__ import annotations

import os
import re
from typing import List, Sequence

from eto.pipeline.settings import (DEFAULT_MODEL, ENGINE_CHOICES, METHODS, REPO_ROOT, TASK_CONFIGS_DIR, RunSettings,
                                   SettingsError, bash_pairs, load_preset, preset_file, write_json)
from fastchat.launch import free_port

USAGE = ("usage: bash run_eto.sh [--preset NAME|FILE] [--method METHOD] [--rounds N] [--workers N] "
         "[--engine auto|vllm|hf] [--no_expert] <task> [exp_name] [model_path] [save_dir]  (see --help)")
VALUE_OPTIONS = ("--preset", "--method", "--rounds", "--workers", "--engine")


def parse(argv: Sequence[str]) -> dict:
    options, positional = {}, []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in VALUE_OPTIONS:
            if i + 1 >= len(argv):
                raise SettingsError(f"{arg} needs a value")
            options[arg[2:]] = argv[i + 1]
            i += 2
            continue
        if arg == "--no_expert":
            options["no_expert"] = True
        elif arg.startswith("--"):
            raise SettingsError(f"unknown option {arg} (see --help)")
        else:
            positional.append(arg)
        i += 1
    if not positional:
        raise SettingsError(USAGE)
    return {"options": options, "positional": positional}


def from_caller(path: str, caller_dir: str) -> str:
    """A path given on the command line is relative to where the command was run (when it names
    something there); run_eto.sh itself runs in the repository."""
    if os.path.isabs(path) or os.path.realpath(caller_dir) == REPO_ROOT or not os.path.exists(os.path.join(caller_dir, path)):
        return path
    return os.path.join(caller_dir, path)


def task_names() -> List[str]:
    return sorted(f[:-5] for f in os.listdir(TASK_CONFIGS_DIR) if f.endswith(".json") and "_" not in f)


def resolve(argv: Sequence[str], caller_dir: str) -> RunSettings:
    parsed = parse(argv)
    options, positional = parsed["options"], parsed["positional"]
    preset_name = options.get("preset", "full")
    task = positional[0]
    if task == "demo":  # = --preset demo sciworld demo
        preset_name, task = "demo", "sciworld"
        positional = [task, positional[1] if len(positional) > 1 else "demo", *positional[2:]]
    if len(positional) > 4:
        raise SettingsError(f"too many arguments: {' '.join(positional[4:])} ({USAGE})")
    exp = positional[1] if len(positional) > 1 else "eto"
    model_path = from_caller(positional[2].rstrip("/") or "/", caller_dir) if len(positional) > 2 else DEFAULT_MODEL
    save_dir = from_caller(positional[3], caller_dir) if len(positional) > 3 else "checkpoints"
    if "/" in preset_name or preset_name.endswith(".toml"):
        preset_name = from_caller(preset_name, caller_dir)

    if not os.path.isfile(os.path.join(TASK_CONFIGS_DIR, f"{task}.json")):
        raise SettingsError(f"unknown task '{task}' (choose from: {' '.join(task_names())})")
    if not os.path.isfile(os.path.join(model_path, "config.json")):
        raise SettingsError(f"model folder '{model_path}' not found or has no config.json (run 'bash setup.sh' first)")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", exp):
        raise SettingsError(f"exp_name '{exp}' may only use letters, digits, '.', '_' and '-'")
    preset = load_preset(preset_file(preset_name), task)

    method = options.get("method", "eto")
    if method not in METHODS:
        raise SettingsError(f"--method must be {', '.join(METHODS[:-1])} or {METHODS[-1]}")
    no_expert = bool(options.get("no_expert")) or method == "selfplay"
    if options.get("no_expert") and method != "selfplay":
        raise SettingsError("--no_expert: only --method selfplay runs without expert trajectories")
    rounds = options.get("rounds", str(preset.rft_rounds if method == "rft" else preset.rounds))
    if not rounds.isdigit():
        raise SettingsError("--rounds must be a non-negative integer")
    engine_choice = options.get("engine", preset.engine)
    if engine_choice not in ENGINE_CHOICES:
        raise SettingsError("--engine must be auto, vllm or hf")
    ngpu = _gpu_count()
    workers = options.get("workers", str(ngpu or 1))
    if not re.fullmatch(r"[1-9][0-9]*", workers):
        raise SettingsError("--workers must be a positive integer")
    config = preset.exp_config
    if not (os.path.isfile(os.path.join(TASK_CONFIGS_DIR, f"{config}.json")) or os.path.isfile(config)):
        raise SettingsError(f"preset '{preset_name}' needs task config '{config}', which does not exist")

    from eto.engines import cpu_allocator, resolve_engine

    cores = os.cpu_count() or 1
    return RunSettings(
        task=task, exp=exp, model_path=model_path, save_dir=save_dir, preset_name=preset_name, preset=preset,
        method=method, rounds=int(rounds), workers=int(workers), engine=resolve_engine(engine_choice),
        engine_choice=engine_choice, ngpu=ngpu, no_expert=no_expert,
        # CPU: the cores are shared out among the workers. An episode alternates between generating
        # and stepping its env, so a worker rarely competes with the env's JVM; on 2 cores, 2
        # threads for one worker measured 2.5 s per agent step against 4.2 s with 1.
        serve_threads=0 if ngpu else max(1, cores // int(workers)),
        allocator="" if ngpu else cpu_allocator(), controller_port=free_port())


def setup(argv: Sequence[str], out_dir: str, caller_dir: str) -> RunSettings:
    """Resolve the run's settings; write ``settings.json`` and ``settings.bash`` (run_eto.sh's
    variables) into ``out_dir``. The settings reach the run's log folder once its lock is held."""
    settings = resolve(argv, caller_dir)
    os.makedirs(out_dir, exist_ok=True)
    os.makedirs(settings.paths.log_dir, exist_ok=True)  # for its lock file
    json_path = os.path.join(out_dir, "settings.json")
    write_json(settings, json_path)
    with open(os.path.join(out_dir, "settings.bash"), "wb") as f:
        f.write(bash_pairs(settings.bash_variables(settings.paths.settings)))
    return settings


def _gpu_count() -> int:
    """CUDA devices this run may use; without an NVIDIA driver, 0 without importing torch (seconds)."""
    import shutil

    if not (shutil.which("nvidia-smi") or os.path.exists("/proc/driver/nvidia")):
        return 0
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count()
