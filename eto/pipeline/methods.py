"""The stage plans of the methods other than ETO (run_eto.sh spells ETO's out): the paper's
baselines from the same SFT model (Best-of-N, RFT, PPO), ETO's step-level and mixture variants,
and self-play without expert data. Each stage's exact command is in its log, as run_eto.sh's.

    python -m eto.pipeline method bon        # from run_eto.sh --method bon (the run's settings)
"""

from __future__ import annotations

import shlex
from typing import Callable, Dict

from eto.pipeline import commands, rules
from eto.pipeline.settings import _number
from eto.pipeline.stages import Run


def evaluate(run: Run, prefix: str, row: str, model: str, facts: Dict[str, str], suffix: str = "",
             temperature=None, samples: int = 1) -> None:
    """``model`` plays every task of each evaluation split (greedily unless ``temperature``)."""
    for split in run.settings.preset.eval_splits:
        run.stage(f"{prefix}_{split}", commands.evaluation(run.settings, model, split, suffix, temperature, samples),
                  {"row": row, "split": split, **facts}, serve=model)


def explore(run: Run, stage: str, row: str, model: str, **play) -> str:
    """``model`` plays the train split, in one part per worker; returns the episode folder."""
    command = commands.exploration(run.settings, model, **play)
    run.stage(stage, command, {"row": row}, serve=model, parts=run.settings.workers)
    return run.paths.episodes(model, play.get("exp_name", "_train"))


def dpo_rounds(run: Run, level: str) -> str:
    """ETO's rounds with step-level pairs (``step``) or both kinds (``mixture``): explore ->
    pairs -> DPO against the round's policy -> evaluate. Returns the final policy."""
    s, p = run.settings, run.settings.preset
    policy = run.paths.sft_model
    for i in range(1, s.rounds + 1):
        beta, lr = (p.step_beta, p.step_lr) if level == "step" else (p.round_value("dpo_beta", i), p.round_value("dpo_lr", i))
        name, row = f"{level}_round{i}", f"{level}_round_{i}"
        sources = []
        if level == "mixture":
            sources += ["--episodes_dir", explore(run, f"{name}_explore", row, policy)]
        folder = explore(run, f"{name}_explore_step", row, policy, exp_name="_train_step",
                         extra=["--prefix_data", p.sft_data, "--prefix_seed", str(p.step_seed)])
        sources += ["--step_episodes_dir", folder]
        pairs = run.paths.pairs(f"{level}_{i}")
        run.stage(f"{name}_pairs", commands.pairs(s, pairs, sources), {"row": row, "pairs": pairs})
        facts = {"method": level, "round": str(i)}
        if rules.no_records(pairs):
            run.keep(f"{name}_dpo", f"{name}_eval", row, policy, facts)
            continue
        trained = run.paths.model(f"{level}-dpo", i)
        run.stage(f"{name}_dpo", commands.dpo(s, policy, pairs, trained, beta, lr))
        evaluate(run, f"{name}_eval", row, trained, facts)
        policy = trained
    return policy


def best_of_n(run: Run) -> str:
    """The SFT policy samples ``bon_samples`` episodes per test task; Best-of-N and mean-of-N."""
    p = run.settings.preset
    evaluate(run, "bon_eval", f"best_of_{p.bon_samples}", run.paths.sft_model,
             {"method": "bon", "round": "0", "samples": str(p.bon_samples)}, "_bon", p.bon_temperature, p.bon_samples)
    return run.paths.sft_model


def rft(run: Run) -> str:
    """Rejection-sampling fine-tuning: explore (``rft_samples`` per task) -> the expert data plus
    every success so far -> SFT from the base model -> evaluate."""
    s, p = run.settings, run.settings.preset
    policy, trained_on, limit, episodes = run.paths.sft_model, p.sft_data, p.sft_tasks, []
    for i in range(1, s.rounds + 1):
        name, row = f"rft_round{i}", f"rft_round_{i}"
        episodes.append(explore(run, f"{name}_explore", row, policy, exp_name="_train_rft",
                                temperature=p.rft_temperature, samples=p.rft_samples))
        data = run.paths.rft_data(str(i))
        run.stage(f"{name}_data", commands.rft_data(s, data, episodes), {"row": row, "data": data})
        facts = {"method": "rft", "round": str(i)}
        if rules.same_records(data, trained_on, limit):
            run.keep(f"{name}_sft", f"{name}_eval", row, policy, facts)
            continue
        trained = run.paths.model("rft", i)
        run.stage(f"{name}_sft", commands.sft(s, s.model_path, data, trained))
        evaluate(run, f"{name}_eval", row, trained, facts)
        policy, trained_on, limit = trained, data, 0
    return policy


def ppo(run: Run) -> str:
    """The SFT policy plays the train tasks (its trainer generates the rollouts) and is
    optimised for their reward, on-policy."""
    trained = run.paths.model("ppo")
    run.stage("ppo_train", commands.ppo(run.settings, run.paths.sft_model, trained), {"row": "ppo"})
    evaluate(run, "ppo_eval", "ppo", trained, {"method": "ppo", "round": "1"})
    return trained


def selfplay(run: Run) -> str:
    """No expert data and no SFT (the paper's Table 5): ETO, RFT and RFT then ETO from the base
    model's own episodes. The untuned model's folders are named after the experiment too: its name
    alone is shared by every experiment that starts from it."""
    s = run.settings
    base, base_eval = s.model_path, f"_selfplay_{s.exp}"
    evaluate(run, "selfplay_base_eval", "selfplay_base", base, {"method": "selfplay_base", "round": "0"}, base_eval)
    _selfplay_dpo(run, "selfplay", base, base_eval, run.paths.model("selfplay-eto"), "selfplay_eto")
    data = run.paths.rft_data("selfplay")
    run.stage("selfplay_rft_data", commands.rft_data(s, data, [run.paths.episodes(base, f"_train_selfplay_{s.exp}")],
                                                     expert=False), {"row": "selfplay_rft", "data": data})
    facts = {"method": "selfplay_rft", "round": "1"}
    if rules.no_records(data):  # no success: RFT is the base model itself
        rft_model, rft_eval = base, base_eval
        run.keep("selfplay_rft_sft", "selfplay_rft_eval", "selfplay_rft", rft_model, facts, rft_eval)
    else:
        rft_model, rft_eval = run.paths.model("selfplay-rft"), ""
        run.stage("selfplay_rft_sft", commands.sft(s, base, data, rft_model))
        evaluate(run, "selfplay_rft_eval", "selfplay_rft", rft_model, facts)
    return _selfplay_dpo(run, "selfplay_rft_eto", rft_model, rft_eval, run.paths.model("selfplay-rft-eto"),
                         "selfplay_rft_eto")


def _selfplay_dpo(run: Run, stage: str, model: str, model_eval: str, trained: str, method: str) -> str:
    """``model`` plays each train task ``selfplay_samples`` times -> best/worst pairs -> DPO ->
    evaluate (``model``'s own evaluation, suffix ``model_eval``, stands if no pair)."""
    s, p = run.settings, run.settings.preset
    folder = explore(run, f"{stage}_explore", method, model, exp_name=f"_train_selfplay_{s.exp}",
                     temperature=p.selfplay_temperature, samples=p.selfplay_samples)
    pairs = run.paths.pairs(stage)
    run.stage(f"{stage}_pairs", commands.selfplay_pairs(s, pairs, folder), {"row": method, "pairs": pairs})
    facts = {"method": method, "round": "1"}
    if rules.no_records(pairs):
        run.keep(f"{stage}_dpo", f"{stage}_eval", method, model, facts, model_eval)
        return model
    run.stage(f"{stage}_dpo", commands.dpo(s, model, pairs, trained, p.round_value("dpo_beta", 1), p.round_value("dpo_lr", 1)))
    evaluate(run, f"{stage}_eval", method, trained, facts)
    return trained


def dose_response(run: Run) -> str:
    """A pilot's DPO dose-response (results/webshop-evidence/plan.md): the SFT policy explores and
    its pairs are made as in ETO's round 1 (the same stages, which an ETO run of the experiment then
    reuses); for each learning rate of ``dose_lr``, one DPO run (round 1's beta) of the largest of
    ``dose_steps`` optimizer steps, whose model after each of ``dose_steps`` plays the evaluation
    splits (``--snapshot_steps``: with a constant learning rate after the warmup, the model after N
    steps is the one an N-step run gives)."""
    from eto.trainer_core import snapshot_folder

    s, p = run.settings, run.settings.preset
    policy, pairs = run.paths.sft_model, run.paths.pairs("1")
    folder = explore(run, "round1_explore", "round_1", policy)
    run.stage("round1_pairs", commands.pairs(s, pairs, ["--episodes_dir", folder]), {"row": "round_1", "pairs": pairs})
    if rules.no_records(pairs):
        run.say("dose: round 1 gave no pair: nothing to train on")
        return policy
    last = max(p.dose_steps)
    for lr in p.dose_lr:
        tag = f"lr{_number(lr)}"
        trained = run.paths.model(f"dose-{tag}")
        earlier = ",".join(str(n) for n in sorted(p.dose_steps) if n < last)
        command = commands.dpo(s, policy, pairs, trained, p.round_value("dpo_beta", 1), lr) + ["--max_steps", str(last)]
        run.stage(f"dose_{tag}_dpo", command + (["--snapshot_steps", earlier] if earlier else []))
        for n in sorted(p.dose_steps):
            evaluate(run, f"dose_{tag}_steps{n}_eval", f"dose_{tag}_steps{n}",
                     trained if n == last else snapshot_folder(trained, n),
                     {"method": "dose", "round": "1", "lr": _number(lr), "steps": str(n)})
    return policy


def variants(run: Run) -> str:
    """Variants of ETO's round 1 (a pilot's or an extension's; results/webshop-evidence/plan.md):
    from round 1's exploration of the SFT policy, each variant named in the preset's
    ``variant_pairs_args`` (flags for construct_preference.py, e.g. ``--cut_at_divergence``: pairs
    of its own) or ``variant_dpo_args`` (flags added to the DPO command, e.g. ``--loss_type sigmoid
    sft``) trains one DPO at round 1's beta and learning rate and plays the evaluation splits."""
    s, p = run.settings, run.settings.preset
    names = sorted(set(p.variant_pairs_args) | set(p.variant_dpo_args))
    if not names:
        run.say("variants: the preset names none (variant_pairs_args, variant_dpo_args)")
        return run.paths.sft_model
    policy, pairs = run.paths.sft_model, run.paths.pairs("1")
    folder = explore(run, "round1_explore", "round_1", policy)
    run.stage("round1_pairs", commands.pairs(s, pairs, ["--episodes_dir", folder]), {"row": "round_1", "pairs": pairs})
    for name in names:
        row, own = f"variant_{name}", p.variant_pairs_args.get(name)
        data = run.paths.pairs(f"1_{name}") if own else pairs
        if own:
            run.stage(f"{row}_pairs", commands.pairs(s, data, ["--episodes_dir", folder, *shlex.split(own)]),
                      {"row": row, "pairs": data})
        if rules.no_records(data):
            run.say(f"variants: {name} has no pair to train on")
            continue
        trained = run.paths.model(f"variant-{name}")
        run.stage(f"{row}_dpo", commands.dpo(s, policy, data, trained, p.round_value("dpo_beta", 1), p.round_value("dpo_lr", 1))
                  + shlex.split(p.variant_dpo_args.get(name, "")))
        evaluate(run, f"{row}_eval", row, trained, {"method": "variant", "variant": name, "round": "1"})
    return policy


PLANS: Dict[str, Callable[[Run], str]] = {
    "step": lambda run: dpo_rounds(run, "step"), "mixture": lambda run: dpo_rounds(run, "mixture"),
    "bon": best_of_n, "rft": rft, "ppo": ppo, "selfplay": selfplay, "dose": dose_response,
    "variants": variants,
}
