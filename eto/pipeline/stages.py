"""The stage engine: run a stage's command once, with its log, and mark it done; skip it when its
marker says it finished. What the command is (a trainer, an evaluation) decides the rest:

- an evaluation (``python -m eval_agent.main``) with ``serve``: the model is served first (the
  run's servers start or are reused, ``servers.py``); its marker records its episode folder;
- a training (``fastchat/train/*.py``): the servers are stopped first (the devices are the
  trainer's), a folder that already holds the finished model counts as done, and the marker
  records the model and its fingerprints (``eto.weights``), with DPO's and PPO's beta and lr;
- a finished training whose model is not on this machine (a run continued elsewhere:
  checkpoints are too large to commit) is trained again when a later stage needs its model, from
  the command given now; other weights than its marker's make the stages after it again
  (``markers.record_remade``), from the top of the run (exit ``RESTART``).

Every stage is killed with the process that runs it (a SIGKILL included); a killed stage leaves
no marker, and its command resumes from what it saved (episodes, checkpoints).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from eto.io import read_json_or_none, write_json_atomic
from eto.pipeline import servers
from eto.pipeline.markers import record_remade, write_marker
from eto.pipeline.paths import DEFAULT_OUTPUT_DIR, episode_folder, model_name
from eto.pipeline.settings import RunSettings
from eto.processes import stop_with_parent

RESTART = 3  # exit status: stages were superseded, run_eto.sh starts again from the top
TRAINERS = ("fastchat/train/train.py", "fastchat/train/train_dpo.py", "fastchat/train/train_ppo.py")
COMPLETE_MARKER = "eto_training.json"  # eto.trainer_core writes it last in a finished model folder
SUMMARY_LINES = re.compile(r"average reward|^win:|pairs ->|^saved |successful episodes")
# eval_agent.main's defaults for the flags that name its episode folder
EPISODE_FLAG_DEFAULTS = {"--output_dir": DEFAULT_OUTPUT_DIR, "--exp_config": "sciworld", "--exp_name": ""}


class StageError(RuntimeError):
    """A stage failed; the message is what the user is shown."""


class Restart(Exception):
    """A model made again differs from its first run: what followed it was moved aside."""


class Interrupted(BaseException):
    """SIGTERM or SIGINT reached the stage engine."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def raise_on_signals() -> None:
    def handler(signum, _frame):
        raise Interrupted(signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


# ---------------------------------------------------------------------------- reading a command
def flag_value(command: Sequence[str], flag: str, default: Optional[str] = None) -> Optional[str]:
    """The value of ``--flag v`` or ``--flag=v`` in ``command`` (the last one given)."""
    value = default
    for i, arg in enumerate(command):
        if arg == flag and i + 1 < len(command):
            value = command[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


def trained_model(command: Sequence[str]) -> Optional[str]:
    """The model folder a trainer's command writes, or None if it runs no trainer."""
    if any(arg.endswith(TRAINERS) for arg in command):
        output = flag_value(command, "--output_dir")
        if not output:
            raise StageError(f"a trainer's command without --output_dir: {shlex.join(command)}")
        return output
    return None


def models_read(command: Sequence[str]) -> List[str]:
    """The trained models a trainer's command starts from (its reference included)."""
    return [m for m in (flag_value(command, "--model_name_or_path"), flag_value(command, "--ref_model_name_or_path")) if m]


def episodes_written(command: Sequence[str]) -> Optional[str]:
    """The episode folder of an ``eval_agent.main`` command, as eval_agent.main names it."""
    if "eval_agent.main" not in command:
        return None
    value = {flag: flag_value(command, flag, default) for flag, default in EPISODE_FLAG_DEFAULTS.items()}
    return episode_folder(value["--output_dir"], flag_value(command, "--model_name") or "", value["--exp_config"],
                          value["--exp_name"])


def is_finished_model(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, COMPLETE_MARKER))


# ---------------------------------------------------------------------------- the run
class Run:
    """The stages of one run: run_eto.sh's ``stage`` calls and the methods' plans go through here."""

    def __init__(self, settings: RunSettings, out=None, err=None):
        self.settings = settings
        self.paths = settings.paths
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.children: List[subprocess.Popen] = []

    # ------------------------------------------------------------------ queries
    def done(self, stage: str) -> bool:
        return os.path.isfile(self.paths.marker(stage))

    def say(self, text: str, error: bool = False) -> None:
        print(text, file=self.err if error else self.out, flush=True)

    # ------------------------------------------------------------------ a stage
    def stage(self, name: str, command: Sequence[str], facts: Optional[Dict[str, str]] = None,
              serve: Optional[str] = None, parts: int = 1, given: Optional[str] = None) -> None:
        """Run ``command`` as stage ``name`` unless it is marked done. ``facts`` go on its marker;
        ``serve``: a model to serve first; ``parts``: run it that many times at once, each on its
        share of the tasks (``--part_num``/``--part_idx``); ``given``: the file it makes, used as
        it is when it exists without the stage's marker (data a user supplied)."""
        facts = dict(facts or {})
        command = list(command)
        model = trained_model(command)
        if given is not None:
            if self.done(name) and not os.path.exists(given):
                os.remove(self.paths.marker(name))  # made here, then deleted: make it again
            elif os.path.exists(given) and not self.done(name):
                self.say(f"[data] {name}: {given}")
                return
        if self.done(name):
            if model and not is_finished_model(model):
                self._remember_remake(model, name, command)
                self.say(f"[done] {name}  (its model is not on this machine: trained again if a later stage needs it)")
            else:
                self.say(f"[done] {name}")
            return
        for needed in models_read(command) + ([serve] if serve else []):
            self.ensure_model(needed)
        if serve:
            servers.serve(self.settings, serve)
        elif model:
            servers.stop(self.settings)  # free the devices for training
        log = self.paths.stage_log(name)
        self.say(f"[run ] {name}  (log: {log})")
        start = time.monotonic()
        if model and is_finished_model(model):
            self._append(log, f"==== {_now()} {name}: {shlex.join(command)}\n{model} already holds a trained model\n")
        else:
            self._append(log, f"==== {_now()} {name}: {shlex.join(command)}\n")
            if not self.run_logged(_part_commands(command, parts), log):
                raise StageError(f"run_eto.sh: stage '{name}' failed; last lines of {log}:\n{_tail(log)}")
        facts.update(self.made_facts(command, model))
        self.mark(name, round(time.monotonic() - start), facts)
        self.say(f"       finished in {round(time.monotonic() - start)} s")
        for line in _summary_lines(log):
            self.say(f"       {line}")

    def mark(self, name: str, seconds: float, facts: Dict[str, str]) -> None:
        write_marker(self.paths.stages_dir, name, seconds, facts)
        self.build_report()

    def made_facts(self, command: Sequence[str], model: Optional[str]) -> Dict[str, str]:
        """What a finished command made, for its marker."""
        facts: Dict[str, str] = {}
        episodes = episodes_written(command)
        if episodes:
            facts["episodes"] = episodes
        if model:
            from eto import weights

            facts["model"] = model
            if any(arg.endswith(("train_dpo.py", "train_ppo.py")) for arg in command):
                facts["beta"] = flag_value(command, "--beta") or ""
                facts["lr"] = flag_value(command, "--learning_rate") or ""
            facts["weights"] = weights.fingerprint(model)
            facts.update(weights.facts(model, flag_value(command, "--model_name_or_path")))
            facts.update(training_facts(model))
        return facts

    def keep(self, train_stage: str, eval_prefix: str, row: str, model: str, facts: Dict[str, str],
             suffix: str = "") -> None:
        """A round with nothing to learn from (no pair, no new success): its policy stays, and its
        rows repeat that policy's evaluation instead of training and evaluating a copy. The
        markers say so (unchanged=1), and so does the comparison."""
        line = f"nothing to train on: {model} stays the policy; its evaluation stands"
        for name, marker_facts in ([(train_stage, {"model": model, "unchanged": "1"})] +
                                   [(f"{eval_prefix}_{split}",
                                     {"row": row, "split": split, **facts, "unchanged": "1",
                                      "episodes": self.paths.episodes(model, f"_{split}{suffix}")})
                                    for split in self.settings.preset.eval_splits]):
            if self.done(name):
                self.say(f"[done] {name}")
                continue
            log = self.paths.stage_log(name)
            self.say(f"[run ] {name}  (log: {log})")
            self._append(log, f"==== {_now()} {name}: unchanged {model}\n{line}\n")
            self.mark(name, 0, marker_facts)
            self.say("       finished in 0 s")

    # ------------------------------------------------------------------ models made again
    def _remember_remake(self, model: str, stage: str, command: List[str]) -> None:
        registry = read_json_or_none(self.paths.remake) or {}
        registry[os.path.normpath(model)] = {"stage": stage, "command": command}
        write_json_atomic(self.paths.remake, registry)

    def ensure_model(self, model: str) -> None:
        """Train ``model`` again if a finished stage made it and it is not here (a run continued
        on another machine); raises ``Restart`` when its weights differ and the stages after it
        were moved aside."""
        registry = read_json_or_none(self.paths.remake) or {}
        spec = registry.pop(os.path.normpath(model), None)
        if spec is None or is_finished_model(model):
            return
        write_json_atomic(self.paths.remake, registry)
        name, command = spec["stage"], spec["command"]
        for needed in models_read(command):
            self.ensure_model(needed)
        servers.stop(self.settings)
        log = self.paths.stage_log(name)
        self.say(f"[redo] {name}  (a later stage needs {model}; log: {log})", error=True)
        self._append(log, f"==== {_now()} {name} again: its model was not on this machine\n")
        start = time.monotonic()
        if not self.run_logged([command], log):
            raise StageError(f"run_eto.sh: stage '{name}' (made again) failed; last lines of {log}:\n{_tail(log)}")
        from eto import weights

        line, superseded = record_remade(self.paths.stages_dir, name, round(time.monotonic() - start),
                                         weights.fingerprint(model), self.paths.output_dir, self.paths.superseded,
                                         weights.format_sketch(weights.sketch(model)))
        self.say(line, error=True)
        if superseded:
            raise Restart(name)

    # ------------------------------------------------------------------ processes
    def run_logged(self, commands: Sequence[Sequence[str]], log: str) -> bool:
        """Run ``commands`` at once, their output appended to ``log``; True if all succeeded. A
        signal to this process stops them first (each also dies with it: parent-death signal)."""
        with open(log, "ab") as out:
            self.children = [subprocess.Popen(list(c), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                              preexec_fn=stop_with_parent(os.getpid())) for c in commands]
        try:
            return all([child.wait() == 0 for child in self.children])
        finally:
            self.stop_children()

    def stop_children(self, grace: float = 60) -> None:
        """SIGTERM to every command still running, then wait (a trainer may be writing a checkpoint)."""
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        deadline = time.time() + grace
        for child in self.children:
            try:
                child.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.children = []

    # ------------------------------------------------------------------ report
    def build_report(self) -> None:
        """report.md/png (stages), compare.md/png (methods) and view.html (episodes, pairs), from
        the markers so far."""
        from eto.io import write_text_atomic
        from eval_agent import report, view

        title = self.title()
        report.build(self.paths.stages_dir, self.paths.report, title)
        write_text_atomic(self.paths.view, view.build_page(self.paths.log_dir, title))

    def title(self) -> str:
        from eto.pipeline.paths import config_name

        return f"{self.settings.exp}: {config_name(self.settings.preset.exp_config)} from {model_name(self.settings.model_path)}"

    @staticmethod
    def _append(log: str, text: str) -> None:
        os.makedirs(os.path.dirname(log) or ".", exist_ok=True)
        with open(log, "a", encoding="utf-8") as f:
            f.write(text)


def training_facts(model: str) -> Dict[str, str]:
    """What the trainer recorded that the marker should carry: the DPO loss terms."""
    record = read_json_or_none(os.path.join(model, COMPLETE_MARKER))
    terms = record.get("data", {}).get("loss_type") if isinstance(record, dict) else None
    if not terms:
        return {}
    return {"loss": "+".join([terms] if isinstance(terms, str) else terms)}


def _part_commands(command: List[str], parts: int) -> List[List[str]]:
    if parts <= 1:
        return [command]
    return [command + ["--part_num", str(parts), "--part_idx", str(j)] for j in range(parts)]


def _summary_lines(log: str, keep: int = 2) -> List[str]:
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            lines = [line.rstrip("\n") for line in f if SUMMARY_LINES.search(line)]
    except OSError:
        return []
    return lines[-keep:]


def _tail(log: str, lines: int = 15) -> str:
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip("\n")
    except OSError:
        return "(no log)"


def _now() -> str:
    return time.strftime("%F %T", time.gmtime())
