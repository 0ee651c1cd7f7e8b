"""A run's settings: run_eto.sh's command line and its preset (``presets/<name>.toml``), checked
and resolved once, at the start.

A preset is data: TOML keys named as in ``Preset`` below, an optional ``extends = "<preset>"``
whose keys it replaces, and tables ``[task.<name>]`` at the end whose keys replace the file's own
for the task ``<name>`` and its variants ``<name>_*``. So a file resolves, for one task, as: its
parent's keys, then its own, then its own task table. Per-round values are lists (round i takes
the i-th, later rounds the last). String values that hold flags are split like a shell's words.

``python -m eto.pipeline setup`` writes the resolved settings as JSON (every stage of the run and
the methods' plans read it, and it stays in the log folder for a person to read) and, for
run_eto.sh, as name/value pairs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from eto.pipeline.paths import RunPaths, config_name

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRESETS_DIR = os.path.join(REPO_ROOT, "presets")
TASK_CONFIGS_DIR = os.path.join(REPO_ROOT, "eval_agent", "configs", "task")
METHODS = ("eto", "step", "mixture", "bon", "rft", "ppo", "selfplay", "dose", "variants")
ENGINE_CHOICES = ("auto", "vllm", "hf")
DEFAULT_MODEL = "models/SmolLM2-135M-Instruct"


class SettingsError(ValueError):
    """Bad arguments or a bad preset: the message is one line for the user."""


@dataclass
class Preset:
    """Every key a preset may set (presets/full.toml explains each)."""

    exp_config: str = "{task}"
    sft_data: str = "data/{exp_config}_sft.json"
    eval_splits: List[str] = field(default_factory=lambda: ["dev", "test"])
    eval_max_tasks: int = 0
    reference_agents: List[str] = field(default_factory=lambda: ["expert"])
    explore_max_tasks: int = 0
    sft_tasks: int = 0
    explore_temperature: float = 0.0
    num_examples: int = 1
    prompts: str = "auto"
    max_new_tokens: int = 512
    engine: str = "auto"
    concurrency: Dict[str, int] = field(default_factory=lambda: {"vllm": 16, "hf": 1})
    worker_args: str = ""
    output_dir: str = "outputs"
    pairs_dir: str = "data_pm"
    log_root: str = "logs"
    rounds: int = 2
    sft_batch: int = 64
    sft_micro_batch: int = 4
    sft_args: str = ""
    dpo_batch: int = 32
    dpo_micro_batch: int = 2
    dpo_beta: List[float] = field(default_factory=lambda: [0.1])
    dpo_lr: List[float] = field(default_factory=lambda: [1e-6])
    dpo_args: str = ""
    gpu_train_args: str = ""
    cpu_train_args: str = ""
    cpu_train_portable: int = 0
    cpu_train_processes: int = 1
    bon_samples: int = 10
    bon_temperature: float = 0.7
    rft_samples: int = 5
    rft_temperature: float = 0.7
    rft_rounds: int = 1
    ppo_generations: int = 4
    ppo_tasks_per_step: int = 8
    ppo_micro_batch: int = 2
    ppo_temperature: float = 0.7
    ppo_beta: float = 0.04
    ppo_lr: float = 1e-6
    ppo_args: str = ""
    step_seed: int = 0
    step_beta: float = 0.5
    step_lr: float = 1e-7
    selfplay_samples: int = 4
    selfplay_temperature: float = 1.0
    selfplay_margin: float = 0
    selfplay_num_examples: int = 1
    dose_lr: List[float] = field(default_factory=lambda: [1e-6])
    dose_steps: List[int] = field(default_factory=lambda: [50])
    variant_pairs_args: Dict[str, str] = field(default_factory=dict)
    variant_dpo_args: Dict[str, str] = field(default_factory=dict)

    def round_value(self, key: str, round_: int) -> float:
        """Round ``round_``'s (1-based) value of a per-round list: the last one past its end."""
        values = getattr(self, key)
        return values[min(round_, len(values)) - 1]


PRESET_TYPES = {f.name: f.type for f in dataclasses.fields(Preset)}
KIND_NAMES = {"str": "a string", "int": "a whole number", "float": "a number", "List[str]": "a non-empty list of strings",
              "List[float]": "a non-empty list of numbers",
              "List[int]": "a non-empty list of whole numbers above 0", "Dict[str, int]": "a table of whole numbers",
              "Dict[str, str]": "a table of strings"}


def preset_file(name: str) -> str:
    """``presets/<name>.toml``, or ``name`` itself when it is a file."""
    if os.path.isfile(name):
        return name
    path = os.path.join(PRESETS_DIR, f"{name}.toml")
    if os.path.isfile(path):
        return path
    choices = sorted(f[:-5] for f in os.listdir(PRESETS_DIR) if f.endswith(".toml"))
    raise SettingsError(f"unknown preset '{name}' (choose from: {' '.join(choices)} or give a file)")


def _check_value(key: str, value, path: str):
    kind = PRESET_TYPES[key]
    ok = {"str": isinstance(value, str), "int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "List[str]": isinstance(value, list) and value != [] and all(isinstance(v, str) for v in value),
          "List[float]": isinstance(value, list) and value != [] and all(
              isinstance(v, (int, float)) and not isinstance(v, bool) for v in value),
          "List[int]": isinstance(value, list) and value != [] and all(
              isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value),
          "Dict[str, int]": isinstance(value, dict) and all(isinstance(v, int) for v in value.values()),
          "Dict[str, str]": isinstance(value, dict) and all(isinstance(v, str) for v in value.values())}[kind]
    if not ok:
        raise SettingsError(f"{path}: '{key}' must be {KIND_NAMES[kind]}, not {value!r}")
    return float(value) if kind == "float" else value


def _preset_keys(path: str, task: str, seen: Sequence[str] = ()) -> dict:
    """The keys of the preset file ``path`` for ``task``, its parents' included."""
    if path in seen:
        raise SettingsError(f"{path}: 'extends' forms a cycle")
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SettingsError(f"{path}: not a readable TOML preset ({error})") from None
    keys: dict = {}
    parent = data.pop("extends", None)
    if parent is not None:
        base = parent if not parent.endswith(".toml") else os.path.join(os.path.dirname(path), parent)
        keys.update(_preset_keys(preset_file(base), task, [*seen, path]))
    tables = data.pop("task", {})
    for name, table in [("", data)] + sorted((n, t) for n, t in tables.items() if task == n or task.startswith(n + "_")):
        for key, value in table.items():
            if key not in PRESET_TYPES:
                where = f" (table [task.{name}])" if name else ""
                raise SettingsError(f"{path}: unknown key '{key}'{where}; the keys are listed in eto/pipeline/settings.py")
            keys[key] = _check_value(key, value, path)
    return keys


def load_preset(name: str, task: str) -> Preset:
    preset = Preset(**_preset_keys(preset_file(name), task))
    preset.exp_config = preset.exp_config.format(task=task)
    preset.sft_data = preset.sft_data.format(task=task, exp_config=config_name(preset.exp_config))
    for key in ("eval_max_tasks", "explore_max_tasks", "sft_tasks"):
        if getattr(preset, key) < 0:
            raise SettingsError(f"preset '{name}': '{key}' must be 0 (all) or a count of tasks")
    ranks = preset.cpu_train_processes
    if ranks < 1:
        raise SettingsError(f"preset '{name}': 'cpu_train_processes' must be 1 or more")
    for kind, batch, micro in (("sft", preset.sft_batch, preset.sft_micro_batch), ("dpo", preset.dpo_batch, preset.dpo_micro_batch),
                               ("ppo", preset.ppo_tasks_per_step * preset.ppo_generations, preset.ppo_micro_batch)):
        if ranks > 1 and batch % (micro * ranks):
            raise SettingsError(f"preset '{name}': the {kind} batch ({batch}) is not a whole number of micro-batches "
                                f"({micro}) on each of the {ranks} cpu_train_processes")
    for agent in preset.reference_agents:
        if not os.path.isfile(os.path.join(REPO_ROOT, "eval_agent", "configs", "model", f"{agent}.json")):
            raise SettingsError(f"preset '{name}': reference agent '{agent}' has no config eval_agent/configs/model/{agent}.json")
    flags = {key: getattr(preset, key) for key in ("sft_args", "dpo_args", "ppo_args", "gpu_train_args", "cpu_train_args",
                                                    "worker_args")}
    for table in ("variant_pairs_args", "variant_dpo_args"):
        flags.update({f"{table}.{variant}": value for variant, value in getattr(preset, table).items()})
        for variant in getattr(preset, table):
            if not re.fullmatch(r"[a-z0-9]+", variant):
                raise SettingsError(f"preset '{name}': variant name '{variant}' in '{table}' must be lower-case letters and digits")
    for key, value in flags.items():
        try:
            shlex.split(value)
        except ValueError as error:
            raise SettingsError(f"preset '{name}': '{key}' is not a list of flags ({error})") from None
    return preset


# ---------------------------------------------------------------------------- the run
@dataclass
class RunSettings:
    """run_eto.sh's arguments with its preset, resolved for this machine."""

    task: str
    exp: str
    model_path: str
    save_dir: str
    preset_name: str
    preset: Preset
    method: str = "eto"
    rounds: int = 1
    workers: int = 1
    engine: str = "hf"          # what serves: vllm or hf (auto resolved)
    engine_choice: str = "auto"  # as asked: PPO's trainer resolves "auto" for its own rollouts
    ngpu: int = 0
    no_expert: bool = False
    serve_threads: int = 0       # torch threads per worker (CPU); 0: the engine's choice
    allocator: str = ""          # preloaded for CPU training
    controller_port: int = 0     # the run's FastChat controller (picked free at the start)

    @property
    def paths(self) -> RunPaths:
        p = self.preset
        return RunPaths(self.exp, p.exp_config, self.model_path, self.save_dir, p.output_dir, p.pairs_dir, p.log_root)

    @property
    def concurrency(self) -> int:
        return self.preset.concurrency.get(self.engine, 1)

    @property
    def train_processes(self) -> int:
        """Trainer processes (ranks): one per GPU, or the preset's count on a CPU machine."""
        return self.ngpu if self.ngpu > 0 else self.preset.cpu_train_processes

    @property
    def num_examples(self) -> int:
        # Self-play prompts the untuned model, which needs an example of the reply format to act at all.
        return self.preset.selfplay_num_examples if self.method == "selfplay" else self.preset.num_examples

    # ------------------------------------------------------------------ command pieces
    def launcher(self) -> List[str]:
        """What starts a trainer: torchrun on GPUs; on CPU python (torchrun with
        ``cpu_train_processes`` > 1: DDP over gloo, the cores shared out), with the allocator
        preloaded and, with cpu_train_portable, the kernels pinned."""
        if self.ngpu > 0:
            return ["torchrun", "--nproc_per_node", str(self.ngpu), "--master_port", os.environ.get("MASTER_PORT", "20001")]
        env = []
        if self.allocator:
            # tcmalloc: 1.21x faster CPU training than glibc's malloc, same loss (benchmarks/cpu_allocator.py)
            preload = os.environ.get("LD_PRELOAD")
            env.append(f"LD_PRELOAD={self.allocator}" + (f":{preload}" if preload else ""))
        portable, ranks = self.preset.cpu_train_portable, self.preset.cpu_train_processes
        # each rank its share of the threads (more threads than cores ran ~25x slower)
        threads = max(1, (portable or len(os.sched_getaffinity(0))) // ranks) if ranks > 1 else portable
        if threads:
            env = [f"OMP_NUM_THREADS={threads}", f"MKL_NUM_THREADS={threads}"] + env
        if portable:
            # The same data and seeds train other weights on a CPU whose kernels differ (AVX-512 or
            # AMX against AVX2; bf16 autocast only where the CPU has bf16). This pins what decides
            # the sums: ATen's and MKL's AVX2 code paths (MKL's conditional numerical
            # reproducibility), oneDNN at most AVX2, N threads; with fp32 (no --bf16 in
            # cpu_train_args), for a run that may continue on another machine. It costs speed: 1.9x
            # the time of bf16 autocast on an AMX CPU, 1.26x that of default fp32 (a 4-conversation
            # SFT here; results/sciworld-evidence/pilots.md).
            env = ["ATEN_CPU_CAPABILITY=avx2", "MKL_CBWR=AVX2,STRICT", "ONEDNN_MAX_CPU_ISA=AVX2"] + env
        if ranks > 1:  # --standalone: a rendezvous on a free local port, so that runs side by side never collide
            return ["env", *env, "torchrun", "--standalone", "--nproc_per_node", str(ranks)]
        return (["env", *env] if env else []) + ["python"]

    def train_args(self, kind: str, batch: int, micro_batch: int) -> List[str]:
        """A trainer's flags from the preset: ``<kind>_args``, the device's, and the batch as
        per-device micro-batches times accumulation."""
        p = self.preset
        device = p.gpu_train_args if self.ngpu > 0 else p.cpu_train_args
        return (["--report_to", "none"] + shlex.split(device) + shlex.split(getattr(p, f"{kind}_args")) +
                ["--per_device_train_batch_size", str(micro_batch),
                 "--gradient_accumulation_steps", str(grad_accum(batch, micro_batch, self.train_processes))])

    def prompt_args(self) -> List[str]:
        """How the policy is prompted and decodes, the same in every evaluation, exploration and rollout."""
        return ["--num_examples", str(self.num_examples), "--prompts", self.preset.prompts,
                "--max_new_tokens", str(self.preset.max_new_tokens)]

    def agent_args(self) -> List[str]:
        return self.prompt_args() + ["--concurrency", str(self.concurrency)]

    def expert_args(self) -> List[str]:
        """The environment's own expert: prompted as the policy is, one episode at a time."""
        limit = self.preset.eval_max_tasks
        return self.prompt_args() + (["--max_tasks", str(limit)] if limit else [])

    def eval_args(self) -> List[str]:
        limit = self.preset.eval_max_tasks
        return self.agent_args() + (["--max_tasks", str(limit)] if limit else [])

    def sft_limit(self) -> List[str]:
        """SFT on the expert trajectories of the first ``sft_tasks`` train tasks (RFT: commands.rft_data)."""
        return ["--max_samples", str(self.preset.sft_tasks)] if self.preset.sft_tasks else []

    def explore_args(self) -> List[str]:
        limit = self.preset.explore_max_tasks
        return self.agent_args() + (["--max_tasks", str(limit)] if limit else [])

    def controller_url(self) -> str:
        return f"http://127.0.0.1:{self.controller_port}"

    # ------------------------------------------------------------------ serialised
    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "RunSettings":
        data = dict(data)
        data["preset"] = Preset(**data["preset"])
        return cls(**data)

    def bash_variables(self, settings_file: str) -> Dict[str, object]:
        """What run_eto.sh's own lines use (strings, or lists for its arrays)."""
        p, paths = self.preset, self.paths
        return {
            "SETTINGS": settings_file, "TASK": self.task, "EXP": self.exp, "METHOD": self.method,
            "ROUNDS": str(self.rounds), "WORKERS": str(self.workers), "ENGINE": self.engine,
            "MODEL_PATH": self.model_path, "EXP_CONFIG": p.exp_config, "SFT_DATA": p.sft_data,
            "SFT_MODEL": paths.sft_model, "OUTPUT_DIR": p.output_dir, "LOG_DIR": paths.log_dir, "LOCK": paths.lock,
            "CONTROLLER": self.controller_url(), "PROMPTS": p.prompts,
            "EXPLORE_TEMPERATURE": repr(p.explore_temperature),
            "TRAIN": self.launcher(),
            "SFT_ARGS": self.train_args("sft", p.sft_batch, p.sft_micro_batch) + self.sft_limit(),
            "DPO_ARGS": self.train_args("dpo", p.dpo_batch, p.dpo_micro_batch),
            # index 0 unused: round i reads BETA[i] and LR[i]
            "BETA": [""] + [_number(p.round_value("dpo_beta", i)) for i in range(1, self.rounds + 1)],
            "LR": [""] + [_number(p.round_value("dpo_lr", i)) for i in range(1, self.rounds + 1)],
            "EVAL_SPLITS": list(p.eval_splits), "REFERENCE_AGENTS": list(p.reference_agents), "EVAL_ARGS": self.eval_args(), "EXPERT_ARGS": self.expert_args(), "EXPLORE_ARGS": self.explore_args(),
        }

    def summary(self) -> str:
        return (f"ETO run '{self.exp}': task {self.task} (config {config_name(self.preset.exp_config)}), preset "
                f"{self.preset_name}, method {self.method}, {self.rounds} round(s), {self.workers} worker(s), {self.ngpu} GPU(s)"
                f"{f', {self.train_processes} training processes' if self.train_processes > 1 and not self.ngpu else ''}\n"
                f"  engine {self.engine}{f' ({self.preset.worker_args})' if self.preset.worker_args else ''}, "
                f"{self.concurrency} episode(s) in flight per worker\n"
                f"  start model {self.model_path} -> {self.save_dir}/ | logs {self.paths.log_dir}/")


def _number(value: float) -> str:
    """A float as a preset writes it (1e-06 -> 1e-6, 0.1 -> 0.1), for flags and markers."""
    text = repr(value)
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), text)


def grad_accum(batch: int, micro_batch: int, ranks: int) -> int:
    """Accumulation steps that make ``batch`` from micro-batches on every rank (at least 1)."""
    return max(1, batch // (micro_batch * max(ranks, 1)))


def bash_pairs(variables: Dict[str, object]) -> bytes:
    """NAME / VALUE pairs, each NUL-terminated, that run_eto.sh assigns with ``printf -v``: no code
    is evaluated. A list becomes ``NAME[0]``, ``NAME[1]``, ...; none may be empty (bash's ``set -u``
    calls an array that was never assigned unbound)."""
    out = []
    for name, value in variables.items():
        if value == []:
            raise SettingsError(f"{name} may not be empty")
        items = [(f"{name}[{i}]", v) for i, v in enumerate(value)] if isinstance(value, list) else [(name, value)]
        for key, text in items:
            if "\0" in str(text):
                raise SettingsError(f"{name} holds a NUL character")
            out.append(f"{key}\0{text}\0")
    return "".join(out).encode()


def write_json(settings: RunSettings, path: str) -> None:
    from eto.io import write_json_atomic

    write_json_atomic(path, settings.to_json())


def read_settings(path: Optional[str] = None) -> RunSettings:
    """The run's settings, from ``path`` or ``$ETO_RUN_SETTINGS`` (run_eto.sh sets it)."""
    from eto.io import read_json

    path = path or os.environ.get("ETO_RUN_SETTINGS")
    if not path:
        raise SettingsError("no run settings: give --settings or run from run_eto.sh (ETO_RUN_SETTINGS)")
    return RunSettings.from_json(read_json(path, "run settings file"))


def dump(settings: RunSettings) -> str:
    return json.dumps(settings.to_json(), indent=1)
