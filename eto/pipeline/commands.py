"""The stage commands of the methods' plans (``methods.py``), built from the run's settings: the same
programs and flags as run_eto.sh's ETO loop, which spells its own out."""

from __future__ import annotations

from typing import List, Optional, Sequence

from eto.pipeline.paths import model_name
from eto.pipeline.settings import RunSettings, _number


def play(settings: RunSettings, model: str, split: str, exp_name: str, temperature: Optional[float] = None,
         samples: int = 1, extra: Sequence[str] = ()) -> List[str]:
    """``eval_agent.main``: the served ``model`` plays every task of ``split``."""
    command = ["python", "-m", "eval_agent.main", "--agent_config", "fastchat", "--model_name", model_name(model),
               "--exp_config", settings.preset.exp_config, "--split", split,
               "--controller_address", settings.controller_url(), "--output_dir", settings.preset.output_dir,
               "--exp_name", exp_name]
    if temperature is not None:
        command += ["--temperature", repr(float(temperature))]
    command += ["--num_samples", str(samples)]
    return command + (settings.explore_args() if split == "train" else settings.eval_args()) + list(extra)


def evaluation(settings: RunSettings, model: str, split: str, suffix: str = "", temperature: Optional[float] = None,
               samples: int = 1) -> List[str]:
    return play(settings, model, split, f"_{split}{suffix}", temperature, samples)


def exploration(settings: RunSettings, model: str, exp_name: str = "_train", temperature: Optional[float] = None,
                samples: int = 1, extra: Sequence[str] = ()) -> List[str]:
    temperature = settings.preset.explore_temperature if temperature is None else temperature
    return play(settings, model, "train", exp_name, temperature, samples, extra)


def sft(settings: RunSettings, start: str, data: str, output: str) -> List[str]:
    p = settings.preset
    return (settings.launcher() + ["fastchat/train/train.py", "--model_name_or_path", start, "--data_path", data,
                                   "--output_dir", output] + settings.train_args("sft", p.sft_batch, p.sft_micro_batch))


def dpo(settings: RunSettings, policy: str, pairs: str, output: str, beta: float, lr: float) -> List[str]:
    """DPO against the policy itself as the frozen reference."""
    p = settings.preset
    return (settings.launcher() + ["fastchat/train/train_dpo.py", "--model_name_or_path", policy,
                                   "--ref_model_name_or_path", policy, "--data_path", pairs, "--output_dir", output,
                                   "--beta", _number(beta), "--learning_rate", _number(lr)] +
            settings.train_args("dpo", p.dpo_batch, p.dpo_micro_batch))


def ppo(settings: RunSettings, policy: str, output: str) -> List[str]:
    p = settings.preset
    limit = ["--max_tasks", str(p.explore_max_tasks)] if p.explore_max_tasks else []
    return (settings.launcher() + ["fastchat/train/train_ppo.py", "--model_name_or_path", policy,
                                   "--task", p.exp_config] + settings.prompt_args() +
            ["--rollout_engine", settings.engine_choice] + limit +
            ["--num_generations", str(p.ppo_generations), "--temperature", _number(p.ppo_temperature),
             "--beta", _number(p.ppo_beta), "--learning_rate", _number(p.ppo_lr), "--output_dir", output] +
            settings.train_args("ppo", p.ppo_tasks_per_step * p.ppo_generations, p.ppo_micro_batch))


def pairs(settings: RunSettings, output: str, sources: Sequence[str]) -> List[str]:
    """Trajectory-level (``--episodes_dir``) and step-level (``--step_episodes_dir``) pairs."""
    return ["python", "construct_preference.py", "--task", settings.preset.exp_config,
            "--golden_traj_path", settings.preset.sft_data, "--output_path", output, *sources]


def rft_data(settings: RunSettings, output: str, episodes: Sequence[str], expert: bool = True) -> List[str]:
    command = ["python", "construct_rft_data.py", "--task", settings.preset.exp_config]
    command += ["--golden_traj_path", settings.preset.sft_data] if expert else ["--no_expert"]
    if expert and settings.preset.sft_tasks:
        command += ["--expert_records", str(settings.preset.sft_tasks)]
    return command + ["--output_path", output] + [arg for folder in episodes for arg in ("--episodes_dir", folder)]


def selfplay_pairs(settings: RunSettings, output: str, episodes: str) -> List[str]:
    return ["python", "construct_selfplay_pairs.py", "--task", settings.preset.exp_config, "--output_path", output,
            "--margin", _number(settings.preset.selfplay_margin), "--episodes_dir", episodes]
