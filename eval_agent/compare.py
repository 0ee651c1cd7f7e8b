"""The comparison of methods in one experiment (the paper's Table 2 and Figure 4), from its
stage markers: ``logs/<exp>/compare.md`` and ``compare.png``.

One row per method that has been evaluated (SFT, Best-of-N and mean-of-N, RFT, PPO, ETO and its
step-level and mixture variants, the self-play rows, the environment's baselines and expert; the iterative
methods at their last round); per test split, the average reward with its 95% bootstrap interval over
tasks, the success rate, the average steps, and the paired difference from SFT on the same tasks
with its interval. The plot shows the same rewards with their intervals, and reward per round for
the iterative methods (round 0 = SFT). ``eval_agent.report build`` regenerates both after every
stage; nothing here is edited by hand.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from eval_agent.results import Outcome, bootstrap_mean_ci, combine_samples, load_outcomes, paired_difference

# The paper's Table 2, then Table 4 (contrast level), then Table 5 (self-play, no expert).
METHOD_ORDER = ("sft", "bon", "rft", "ppo", "eto", "step", "mixture",
                "selfplay_base", "selfplay_rft", "selfplay_eto", "selfplay_rft_eto", "rule", "random", "expert")
REFERENCES = ("rule", "random", "expert")  # rows that need no model (presets' reference_agents)
ITERATIVE = ("eto", "step", "mixture", "rft")
NAMES = {"sft": "SFT", "eto": "ETO", "rft": "RFT", "ppo": "PPO", "step": "ETO step-level", "mixture": "ETO mixture",
         "selfplay_base": "Self-play: base model", "selfplay_rft": "Self-play: RFT", "selfplay_eto": "Self-play: ETO",
         "selfplay_rft_eto": "Self-play: RFT then ETO", "rule": "Rule baseline", "random": "Random clicker",
         "expert": "Expert"}


def method_and_round(marker: dict) -> Tuple[Optional[str], int]:
    """The method and round an evaluation marker belongs to; markers written before methods
    existed name only a row (``SFT``, ``round_N``: ETO)."""
    row = str(marker.get("row", ""))
    method = marker.get("method") or ("sft" if row == "SFT" else "eto" if row.startswith("round_") else None)
    if method == "dose":  # a dose-response's every model is a row of its own
        method = f"dose_lr{marker.get('lr')}_steps{marker.get('steps')}"
    if method == "variant":  # likewise each variant of ETO's round 1 (run_eto.sh --method variants)
        method = f"variant_{marker.get('variant')}"
    tail = row.rsplit("_", 1)[-1]
    round_ = int(marker["round"]) if str(marker.get("round", "")).isdigit() else int(tail) if tail.isdigit() else 0
    return method, round_


def evaluations(markers: Sequence[dict]) -> Dict[str, Dict[int, Dict[str, dict]]]:
    """method -> round -> split -> the evaluation marker (later markers replace earlier ones)."""
    found: Dict[str, Dict[int, Dict[str, dict]]] = {}
    for marker in markers:
        if "episodes" not in marker or "explore" in str(marker.get("stage", "")):  # explorations play train tasks
            continue
        method, round_ = method_and_round(marker)
        if method:
            found.setdefault(method, {}).setdefault(round_, {})[marker.get("split", "test")] = marker
    return found


def outcomes_of(marker: dict, combine: str = "single") -> Dict[str, Outcome]:
    folder = marker["episodes"]
    return load_outcomes(folder) if combine == "single" else combine_samples(folder, combine)


def summarize(outcomes: Dict[str, Outcome], baseline: Optional[Dict[str, Outcome]]) -> Optional[dict]:
    if not outcomes:
        return None
    rewards = [o["reward"] for o in outcomes.values()]
    low, high = bootstrap_mean_ci(rewards)
    diff = None
    if baseline is not None:
        diff = paired_difference({t: o["reward"] for t, o in outcomes.items()},
                                 {t: o["reward"] for t, o in baseline.items()})
    n = len(outcomes)
    return {"n": n, "reward": sum(rewards) / n, "low": low, "high": high,
            "success": sum(o["success"] for o in outcomes.values()) / n,
            "steps": sum(o["steps"] for o in outcomes.values()) / n, "diff": diff}


def ordered_methods(found) -> List[str]:
    return sorted(found, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m))


def row_name(method: str, round_: int) -> str:
    name = NAMES.get(method, method)
    return f"{name} (round {round_})" if method in ITERATIVE else name


def episode_folders(found: Dict[str, Dict[int, Dict[str, dict]]], split: str) -> "OrderedDict[str, str]":
    """row name -> the episode folder of each method's last evaluation of ``split`` that played each
    task once (Best-of-N's samples are left out)."""
    folders: "OrderedDict[str, str]" = OrderedDict()
    for method in ordered_methods(found):
        last = max(found[method])
        marker = found[method][last].get(split)
        if marker is not None and method != "bon":
            folders[row_name(method, last)] = marker["episodes"]
    return folders


UNCHANGED = " (nothing to train on: unchanged)"  # a row whose round kept its policy (run_eto.sh keep_policy)


def table_rows(found: Dict[str, Dict[int, Dict[str, dict]]]) -> "OrderedDict[str, Dict[str, Optional[dict]]]":
    """row name -> split -> summary, methods in the paper's order."""
    sft = found.get("sft", {}).get(0, {})
    baseline = {split: outcomes_of(marker) for split, marker in sft.items()}
    rows: "OrderedDict[str, Dict[str, Optional[dict]]]" = OrderedDict()
    for method in ordered_methods(found):
        last = max(found[method])
        evals = found[method][last]
        if method == "bon":
            samples = next(iter(evals.values())).get("samples", "N")
            variants = [(f"Best-of-{samples}", "best"), (f"Mean-of-{samples}", "mean")]
        else:
            unchanged = any(str(m.get("unchanged")) == "1" for m in evals.values())  # see run_eto.sh keep_policy
            variants = [(row_name(method, last) + (UNCHANGED if unchanged else ""), "single")]
        for name, combine in variants:
            row = {split: summarize(outcomes_of(marker, combine), None if method == "sft" else baseline.get(split))
                   for split, marker in evals.items()}
            if any(row.values()):  # an evaluation whose episodes are gone (or not yet saved) has no row
                rows[name] = row
    return rows


CSV_FIELDS = ("row", "method", "round", "split", "task_id", "reward", "success", "steps")


def task_rows(found: Dict[str, Dict[int, Dict[str, dict]]]) -> List[dict]:
    """Every per-task outcome behind the tables: one line per (row, split, task), every round of
    the iterative methods included (``row`` names the round), Best-of-N and mean-of-N as their own
    rows. Averaging ``reward`` over a row and split gives the tables' figures."""
    lines = []
    for method in ordered_methods(found):
        for round_ in sorted(found[method]):
            evals = found[method][round_]
            if method == "bon":
                samples = next(iter(evals.values())).get("samples", "N")
                variants = [(f"Best-of-{samples}", "best"), (f"Mean-of-{samples}", "mean")]
            else:
                variants = [(row_name(method, round_), "single")]
            for name, combine in variants:
                for split, marker in evals.items():
                    for task_id, o in sorted(outcomes_of(marker, combine).items()):
                        lines.append({"row": name, "method": method, "round": round_, "split": split,
                                      "task_id": task_id, "reward": repr(o["reward"]), "success": repr(o["success"]),
                                      "steps": repr(o["steps"])})
    return lines


def eto_against_the_others(found: Dict[str, Dict[int, Dict[str, dict]]], splits: Sequence[str], label) -> str:
    """Each ETO round against every other method's row (SFT, Best/Mean-of-N, RFT, PPO, the
    variants; not the reference rows: the expert, the env's baselines), paired on the tasks both played: Δ with its interval and p-value."""
    if "eto" not in found:
        return ""
    by_row: Dict[Tuple[str, str], Dict[str, float]] = {}
    for line in task_rows(found):
        if line["method"] not in REFERENCES:
            by_row.setdefault((line["row"], line["split"]), {})[line["task_id"]] = float(line["reward"])
    names = list(dict.fromkeys(row for row, _ in by_row))
    etos = [n for n in names if n.startswith(NAMES["eto"] + " (round ")]
    others = [n for n in names if n not in etos]
    if not others:
        return ""
    lines = ["", "## ETO against each method", "",
             "Each ETO round's paired difference from each other method on the tasks both played, with its 95% "
             "bootstrap interval and the p-value of a paired sign-flip permutation test (not corrected for the "
             f"{len(etos) * len(others) * len(splits)} comparisons in this table).", ""]
    header = ["ETO", "against"] + [f"{label(split)} Δ" for split in splits] + [f"{label(split)} p" for split in splits]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for eto in etos:
        for other in others:
            diffs = [paired_difference(by_row.get((eto, split), {}), by_row.get((other, split), {})) for split in splits]
            cells = [_delta(d) if d else "" for d in diffs]
            cells += [_p(d["p"]) if d else "" for d in diffs]
            lines.append("| " + " | ".join([eto, other] + cells) + " |")
    return "\n".join(lines) + "\n"


def iteration_curves(found: Dict[str, Dict[int, Dict[str, dict]]], split: str) -> Dict[str, List[Tuple[int, dict]]]:
    """method -> [(round, summary)] for the iterative methods, round 0 being SFT."""
    curves = {}
    sft = found.get("sft", {}).get(0, {}).get(split)
    for method in ITERATIVE:
        rounds = sorted(r for r, evals in found.get(method, {}).items() if split in evals)
        if not rounds:
            continue
        points = [(0, sft)] if sft else []
        points += [(r, found[method][r][split]) for r in rounds]
        curves[method] = [(r, s) for r, s in ((r, summarize(outcomes_of(m), None)) for r, m in points) if s]
    return curves


def _delta(d: dict) -> str:
    return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def _p(value: float) -> str:
    return f"{value:.3f}" if value >= 0.001 else "<0.001"  # 10,000 permutations resolve no finer


def _interval(s: dict) -> str:
    return f"{s['reward']:.3f} [{s['low']:.3f}, {s['high']:.3f}]"


def markdown(rows, splits: Sequence[str], label, title: str) -> str:
    lines = [f"# {title}", "",
             "Average reward with its 95% bootstrap interval over tasks; Δ SFT: the paired difference from SFT "
             "on the same tasks, with its interval; p: the two-sided p-value of a paired sign-flip permutation test "
             "of that difference (10,000 permutations), one test per cell, not corrected for their number. An "
             "interval that contains 0 shows no difference at this size.", ""]
    header = ["method"]
    for split in splits:
        header += [f"{label(split)} reward", "success", "steps", "Δ SFT", "p", "tasks"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, by_split in rows.items():
        cells = [name]
        for split in splits:
            s = by_split.get(split)
            if not s:
                cells += ["", "", "", "", "", ""]
                continue
            d = s["diff"]
            delta = _delta(d) if d else ""
            cells += [_interval(s), f"{s['success']:.3f}", f"{s['steps']:.1f}", delta, _p(d["p"]) if d else "", str(s["n"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rounds_markdown(curves_by_split: Dict[str, Dict[str, List[Tuple[int, dict]]]], label) -> str:
    """The iteration curve as a table (paper, Figure 4): reward per round of the iterative methods."""
    lines = ["", "## Reward per round", "", "Round 0 is the SFT model every method starts from.", "",
             "| method | split | " + " | ".join(f"round {r}" for r in range(_last_round(curves_by_split) + 1)) + " |",
             "|" + "---|" * (_last_round(curves_by_split) + 3)]
    for split, curves in curves_by_split.items():
        for method, points in curves.items():
            by_round = dict(points)
            cells = [_interval(by_round[r]) if r in by_round else "" for r in range(_last_round(curves_by_split) + 1)]
            lines.append(f"| {NAMES.get(method, method)} | {label(split)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _last_round(curves_by_split) -> int:
    return max(r for curves in curves_by_split.values() for points in curves.values() for r, _ in points)


def plot(rows, curves_by_split, splits: Sequence[str], label, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_curves = any(curves_by_split.values())
    fig, axes = plt.subplots(1, 2 if has_curves else 1, figsize=(11 if has_curves else 6, 3.8), squeeze=False)
    ax = axes[0][0]
    names = list(rows)
    width = 0.8 / max(len(splits), 1)
    for j, split in enumerate(splits):
        xs = [i + (j - (len(splits) - 1) / 2) * width for i, n in enumerate(names) if rows[n].get(split)]
        ss = [rows[n][split] for n in names if rows[n].get(split)]
        ax.errorbar(xs, [s["reward"] for s in ss], yerr=[[s["reward"] - s["low"] for s in ss],
                    [s["high"] - s["reward"] for s in ss]], fmt="o", capsize=4, label=label(split))
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_ylabel("average reward (95% CI)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(title="split")
    if has_curves:
        ax = axes[0][1]
        for split, curves in curves_by_split.items():
            for method, points in curves.items():
                rs = [r for r, _ in points]
                ss = [s for _, s in points]
                ax.errorbar(rs, [s["reward"] for s in ss], yerr=[[s["reward"] - s["low"] for s in ss],
                            [s["high"] - s["reward"] for s in ss]], marker="o", capsize=4,
                            label=f"{NAMES.get(method, method)} {label(split)}")
        ax.set_xticks(range(_last_round(curves_by_split) + 1))
        reward_axis(ax, "round (0 = SFT)", "average reward (95% CI)")
    save_figure(fig, path, title)


def reward_axis(ax, xlabel: Optional[str], ylabel: str, **legend) -> None:
    """The look every reward plot shares: rewards from 0 to 1, a light grid, a legend."""
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(**legend)


def save_figure(fig, path: str, title: str) -> None:
    import matplotlib.pyplot as plt

    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
