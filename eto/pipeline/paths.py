"""Every file name of an ETO run, in one place: episode and sample folders, pairs and data files,
model folders, stage markers and logs. Every script and stage asks this module; nothing else
joins these names.

    python -m eto.pipeline path episodes MODEL _train    # from run_eto.sh (the run's settings)

Imports nothing heavy: run_eto.sh calls it between stages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def config_name(name: str) -> str:
    """A config's short name, whether given by name or by path (``x/sciworld.json`` -> ``sciworld``)."""
    return os.path.basename(name)[:-5] if name.endswith(".json") else name


def model_name(model: str) -> str:
    """The name a model is served and its episodes are filed under: its folder's basename."""
    return os.path.basename(os.path.normpath(model))


def episode_folder(output_dir: str, model: str, config: str, suffix: str = "") -> str:
    """Where ``eval_agent.main`` saves the episodes that ``model`` (a name or a folder) plays on the
    task config ``config``: ``<output_dir>/<model name>/<config name><suffix>/``; sample k of
    ``--num_samples`` in its ``sample_k/``."""
    return os.path.join(output_dir, model_name(model), config_name(config) + suffix)


EXPERT = "expert"  # the model name of the environment's own expert
DEFAULT_OUTPUT_DIR = "outputs"  # eval_agent.main's --output_dir


@dataclass(frozen=True)
class RunPaths:
    """The files of one run: experiment ``exp`` on task config ``config`` from the model ``base``."""

    exp: str
    config: str          # the task config (a name or a .json path)
    base: str            # the start model's folder
    save_dir: str = "checkpoints"
    output_dir: str = "outputs"
    pairs_dir: str = "data_pm"
    log_root: str = "logs"

    # ------------------------------------------------------------------ logs and markers
    @property
    def log_dir(self) -> str:
        return os.path.join(self.log_root, self.exp)

    @property
    def stages_dir(self) -> str:
        return os.path.join(self.log_dir, "stages")

    def marker(self, stage: str) -> str:
        return marker_path(self.stages_dir, stage)

    def stage_log(self, stage: str) -> str:
        return os.path.join(self.log_dir, f"{stage}.log")

    @property
    def lock(self) -> str:
        return os.path.join(self.log_dir, ".lock")

    @property
    def settings(self) -> str:
        return os.path.join(self.log_dir, "settings.json")

    @property
    def remake(self) -> str:
        """Finished training stages whose models are not on this machine (this start of the run)."""
        return os.path.join(self.log_dir, ".remake.json")

    @property
    def final_model(self) -> str:
        """Where a method's plan leaves the name of its last policy, for the run's last line."""
        return os.path.join(self.log_dir, ".final_model")

    @property
    def servers_ready(self) -> str:
        return os.path.join(self.log_dir, "servers.ready")

    @property
    def servers_log(self) -> str:
        return os.path.join(self.log_dir, "servers.log")

    @property
    def server_logs(self) -> str:
        return os.path.join(self.log_dir, "servers")

    @property
    def report(self) -> str:
        """Without extension: report.md and report.png; compare.* and view.html lie beside it."""
        return os.path.join(self.log_dir, "report")

    @property
    def view(self) -> str:
        return os.path.join(self.log_dir, "view.html")

    @property
    def superseded(self) -> str:
        return os.path.join(self.log_dir, "superseded")

    # ------------------------------------------------------------------ models
    def model(self, kind: str, round_: int = 0) -> str:
        """``<save_dir>/<exp>-<base>-<config>-<kind>[-iter-<round>]``: kind sft, dpo (ETO), step-dpo,
        mixture-dpo, rft, ppo, selfplay-eto, selfplay-rft, selfplay-rft-eto."""
        name = f"{self.exp}-{model_name(self.base)}-{config_name(self.config)}-{kind}"
        return os.path.join(self.save_dir, f"{name}-iter-{round_}" if round_ else name)

    @property
    def sft_model(self) -> str:
        return self.model("sft")

    # ------------------------------------------------------------------ data
    def pairs(self, tag: str) -> str:
        """Preference pairs: ``<pairs_dir>/<config>_pm_<exp>_<tag>.json`` (tag: the round for
        ETO, ``step_1``, ``mixture_1``, ``selfplay``, ...)."""
        return os.path.join(self.pairs_dir, f"{config_name(self.config)}_pm_{self.exp}_{tag}.json")

    def rft_data(self, tag: str) -> str:
        """RFT's training set: ``<pairs_dir>/<config>_rft_<exp>_<tag>.json``."""
        return os.path.join(self.pairs_dir, f"{config_name(self.config)}_rft_{self.exp}_{tag}.json")

    def episodes(self, model: str, suffix: str) -> str:
        """Episodes ``model`` played on this run's task config (``suffix``: ``_test``, ``_train``,
        ``_test_bon``, ...)."""
        return episode_folder(self.output_dir, model, self.config, suffix)


def marker_path(stages_dir: str, stage: str) -> str:
    return os.path.join(stages_dir, f"{stage}.json")
