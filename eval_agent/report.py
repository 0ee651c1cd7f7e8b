"""The report of an ETO run (a markdown table and a PNG plot), from its stage markers.

    python -m eval_agent.report build --dir logs/demo/stages --output logs/demo/report

The run writes one marker per finished stage (``eto.pipeline.markers``); ``build`` reads them all: rows
(SFT, round 1, ...) with each evaluated split's average reward, success rate and average steps
(from the episodes' ``_summary.json``), the number of preference pairs, and the stage times.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import sys
from collections import Counter, OrderedDict
from typing import List, Optional, Sequence

from eval_agent import compare, efficiency
from eval_agent.runner import SUMMARY_FILE
from eto.io import read_json_or_none, write_text_atomic
from eto.pipeline.markers import read_markers
from eto.weights import SAME_MODEL_DISTANCE


def collect_rows(markers: Sequence[dict]) -> "OrderedDict[str, dict]":
    """row name -> {"splits": {split: summary}, "pairs": n}, in the order rows first appear."""
    rows: "OrderedDict[str, dict]" = OrderedDict()
    for marker in markers:
        if "row" not in marker:
            continue
        row = rows.setdefault(marker["row"].replace("_", " "), {"splits": {}, "pairs": None})
        if "episodes" in marker and "explore" not in marker["stage"]:  # explorations play train tasks
            summary = read_json_or_none(os.path.join(marker["episodes"], SUMMARY_FILE))
            if isinstance(summary, dict):
                row["splits"][marker.get("split", "test")] = summary
        if "pairs" in marker:
            pairs = read_json_or_none(marker["pairs"])
            row["pairs"] = len(pairs) if isinstance(pairs, list) else None
    order = lambda name: (0, 0) if name == "SFT" else (1, int(name.split()[-1])) if name.split()[-1].isdigit() else (2, 0)
    # A row with nothing to show (Best-of-N's sampled episodes have no single summary; compare.md
    # reports them) is left out.
    rows = OrderedDict((name, row) for name, row in rows.items() if row["splits"] or row["pairs"] is not None)
    return OrderedDict(sorted(rows.items(), key=lambda item: order(item[0])))


SPLIT_ORDER = ("dev", "test")  # the paper's Table 2: seen, then unseen


def ordered_splits(rows: "OrderedDict[str, dict]") -> List[str]:
    found = {s for row in rows.values() for s in row["splits"]}
    return sorted(found, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else len(SPLIT_ORDER), s))


def split_label(split: str, splits: Sequence[str]) -> str:
    """'seen (dev)' / 'unseen (test)' where a run evaluates both, as the paper reports them."""
    if "dev" in splits and split in ("dev", "test"):
        return {"dev": "seen (dev)", "test": "unseen (test)"}[split]
    return split


def markdown(rows: "OrderedDict[str, dict]", markers: Sequence[dict], title: str) -> str:
    splits = ordered_splits(rows)
    header = ["stage"]
    for split in splits:
        label = split_label(split, splits)
        header += [f"{label} reward", f"{label} success", f"{label} steps"]
    header.append("pairs")
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in rows.items():
        cells = [name]
        for split in splits:
            s = row["splits"].get(split)
            cells += ([f"{s['average_reward']:.4f}", f"{s['success_rate']:.4f}", f"{s['average_steps']:.1f}"]
                      if s else ["", "", ""])
        cells.append("" if row["pairs"] is None else str(row["pairs"]))
        lines.append("| " + " | ".join(cells) + " |")
    episodes = {split: {row["splits"][split]["n"] for row in rows.values() if split in row["splits"]} for split in splits}
    lines += ["", "Episodes per evaluation: " + ", ".join(f"{s}: {'/'.join(map(str, sorted(n)))}" for s, n in episodes.items()),
              "", "| stage | wall time (s) |", "|---|---|"]
    lines += [f"| {m['stage']} | {m['seconds']:.0f} |" for m in markers]
    lines.append(f"| total | {sum(m['seconds'] for m in markers):.0f} |")
    for m in markers:  # training stages run again on another machine (their models were not there)
        for again in m.get("remade", []):
            if again.get("same_weights"):
                verdict = "the same weights"
            elif again.get("distance", 1) <= SAME_MODEL_DISTANCE:
                verdict = f"other bits, the same model ({again['distance']:.3g} of its training's update from the first run)"
            else:
                verdict = "OTHER weights than the first run"
            far = f", {again['distance']:.3g} of its training's update apart" if "distance" in again else ""
            if again.get("superseded") is not None:
                verdict += (f" ({again['replaced']}{far}); the {len(again['superseded'])} stage(s) after it were made "
                            f"again from the new model (the first ones: {again['archive']})")
            lines.append(f"\n{m['stage']} was trained again ({again['seconds']:.0f} s): {verdict}.")
    return "\n".join(lines) + "\n"


WIN_TIE_LOSE = re.compile(r"^win: (\d+), tie: (\d+), lose: (\d+)", re.M)   # construct_preference.py's log
PAIRS_TRAINED = re.compile(r"^train: (\d+) pairs, (\d+) truncated, (\d+) dropped", re.M)  # train_dpo.py's log


def _log_text(stages_dir: str, stage: str) -> str:
    try:
        with open(os.path.join(os.path.dirname(stages_dir), f"{stage}.log"), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def pairs_markdown(markers: Sequence[dict], stages_dir: str) -> str:
    """Per round, what DPO was shown (the WebShop evidence plan's diagnostics): the explored episodes
    against the expert's (win / tie / lose), the pairs and how many DPO cut at its max_length, the
    first divergent action of the pairs by kind (chosen → rejected), and, where
    ``python -m eval_agent.pair_analysis --before --after --output <pairs>.analysis.json`` was run,
    the share of pairs whose rejected action the policy took before the round and the chosen one after."""
    from eval_agent.pair_analysis import divergences

    lines = []
    for marker in markers:
        if not marker["stage"].endswith("_pairs") or "pairs" not in marker:
            continue
        pairs = read_json_or_none(marker["pairs"])
        if not isinstance(pairs, list):
            continue
        found = WIN_TIE_LOSE.findall(_log_text(stages_dir, marker["stage"]))
        trained = PAIRS_TRAINED.findall(_log_text(stages_dir, marker["stage"][: -len("_pairs")] + "_dpo"))
        kinds = Counter(f"{r['chosen_kind']} → {r['rejected_kind']}" for r in divergences(pairs) if r["turn"] is not None)
        analysis = read_json_or_none(os.path.splitext(marker["pairs"])[0] + ".analysis.json")
        summary = analysis.get("summary", {}) if isinstance(analysis, dict) else {}
        fixed, shown = summary.get("rejected before → chosen after"), summary.get("pairs whose rejected action the policy took before")
        lines.append("| " + " | ".join([
            marker["row"].replace("_", " "), " / ".join(found[-1]) if found else "", str(len(pairs)),
            f"{trained[-1][1]} of {trained[-1][0]}" if trained else "",
            ", ".join(f"{kind} {n}" for kind, n in kinds.most_common()), "" if fixed is None else f"{fixed:.2f} of {shown}"]) + " |")
    if not lines:
        return ""
    return "\n".join(["", "## Pairs per round", "",
                      "Explored episodes against the expert's (win / tie / lose), the pairs, how many DPO cut at its "
                      "max_length, the first divergent action by kind (chosen → rejected), and the share of the pairs "
                      "whose rejected action the policy took before the round that it replaced by the chosen one after "
                      "(`eval_agent.pair_analysis`, where run).", "",
                      "| round | win / tie / lose | pairs | truncated | first divergence | rejected → chosen |",
                      "|---|---|---|---|---|---|"] + lines) + "\n"


def plot(rows: "OrderedDict[str, dict]", path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    splits = ordered_splits(rows)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, label in ((axes[0], "average_reward", "average reward"), (axes[1], "success_rate", "success rate")):
        for split in splits:
            xs = [i for i, n in enumerate(names) if split in rows[n]["splits"]]
            ax.plot(xs, [rows[names[i]]["splits"][split][key] for i in xs], marker="o", label=split_label(split, splits))
        ax.set_xticks(range(len(names)), names)
        ax.set_ylabel(label)
        ax.set_ylim(0, 1.02)
        ax.set_xlim(-0.3, len(names) - 0.7)
        ax.grid(alpha=0.3)
    axes[0].legend(title="split")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build(folder: str, output: str, title: str) -> str:
    """Write ``<output>.md``/``.png`` (stages) and, beside them, ``compare.md``/``.png`` (methods),
    ``compare_tasks.csv`` (every method's reward on every task) and ``efficiency.png`` (reward by
    step, where episodes recorded it)."""
    markers = read_markers(folder)
    rows = collect_rows(markers)
    text = markdown(rows, markers, title) + pairs_markdown(markers, folder)
    write_text_atomic(output + ".md", text)
    if any(row["splits"] for row in rows.values()):
        plot(rows, output + ".png", title)
    build_comparison(markers, os.path.join(os.path.dirname(output), "compare"), title)
    return text


def build_comparison(markers: Sequence[dict], output: str, title: str) -> None:
    found = compare.evaluations(markers)
    rows = compare.table_rows(found)
    # A split that only the model-free rows (expert, baselines) played compares no method: it is left out.
    played = {split for method, by_round in found.items() if method not in compare.REFERENCES
              for evals in by_round.values() for split in evals}
    splits = sorted({split for by_split in rows.values() for split, s in by_split.items() if s and split in played},
                    key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else len(SPLIT_ORDER), s))
    if not splits:
        return
    label = lambda split: split_label(split, splits)  # noqa: E731
    curves = {split: compare.iteration_curves(found, split) for split in splits}
    text = compare.markdown(rows, splits, label, f"Methods compared: {title}")
    if any(curves.values()):
        text += compare.rounds_markdown(curves, label)
    text += compare.eto_against_the_others(found, splits, label)
    by_step = {split: efficiency.curves(compare.episode_folders(found, split)) for split in splits}
    if any(by_step.values()):
        text += efficiency.markdown(by_step, label)
        efficiency.plot(by_step, label, os.path.join(os.path.dirname(output), "efficiency.png"),
                        f"Reward by step: {title}")
    write_text_atomic(output + ".md", text)
    tasks = [line for line in compare.task_rows(found) if line["split"] in splits]
    write_text_atomic(output + "_tasks.csv", csv_text(tasks, compare.CSV_FIELDS))
    compare.plot(rows, curves, splits, label, output + ".png", f"Methods compared: {title}")


def csv_text(rows: Sequence[dict], fields: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser("build", help="write <output>.md and <output>.png from the markers")
    report.add_argument("--dir", required=True, help="the run's marker folder")
    report.add_argument("--output", required=True, help="path without extension")
    report.add_argument("--title", default="ETO run")
    args = parser.parse_args(argv)
    print(build(args.dir, args.output, args.title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
