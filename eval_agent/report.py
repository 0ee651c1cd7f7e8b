"""Stage markers of an ETO run, and its final report (a markdown table and a PNG plot).

    python -m eval_agent.report mark --dir logs/demo/stages --stage eval_sft --seconds 312 \\
        row=SFT split=test episodes=outputs/demo-sft/sciworld_demo_test
    python -m eval_agent.report build --dir logs/demo/stages --output logs/demo/report

``run_eto.sh`` writes one marker per finished stage (it resumes at the first stage without one);
each marker records the stage's wall time and what it produced. ``build`` reads them all: rows
(SFT, round 1, ...) with each evaluated split's average reward, success rate and average steps
(from the episodes' ``_summary.json``), the number of preference pairs, and the stage times.
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import os
import shutil
import sys
import time
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from eval_agent import compare, efficiency
from eval_agent.runner import SUMMARY_FILE
from eto.io import read_json_or_none
from eto.io import write_json_atomic, write_text_atomic
from eto.weights import SAME_MODEL_DISTANCE, parse_sketch
from eto.weights import difference as weights_difference


def marker_path(folder: str, stage: str) -> str:
    return os.path.join(folder, f"{stage}.json")


def write_marker(folder: str, stage: str, seconds: float, fields: Dict[str, str]) -> None:
    os.makedirs(folder, exist_ok=True)
    write_json_atomic(marker_path(folder, stage), {"stage": stage, "finished_at": time.time(), "seconds": seconds, **fields})


# Stages that use no trained model: a model made again does not change them.
MODEL_FREE_STAGES = ("expert_data",)
RESTART = 3  # exit status of ``remade`` when stages were superseded and the run must start again


def record_remade(folder: str, stage: str, seconds: float, weights: str,
                  episodes_root: Optional[str] = None, archive_root: Optional[str] = None,
                  sketch: Optional[str] = None) -> Tuple[str, bool]:
    """Note on a finished training stage's marker that it ran again (its model was missing here).
    Returns a line for the user and whether later stages were superseded. CPU training is not
    bit-identical across processors: other bits within ``SAME_MODEL_DISTANCE`` of the first run's
    (as a fraction of its training's update, ``eto.weights``) are the same model, and what finished
    after it stands.
    Further off (or with no sketch to compare), what finished after it may have used another
    model, so it is moved aside (``supersede``) to be made again."""
    path = marker_path(folder, stage)
    marker = read_json_or_none(path)
    if not isinstance(marker, dict):
        raise SystemExit(f"error: no readable marker for stage '{stage}' in {folder}")
    first = marker.get("weights") or "unrecorded"  # also names the archive folder: no space
    same = first == weights
    again = {"at": time.time(), "seconds": seconds, "weights": weights, "same_weights": same}
    close = False
    if not same and sketch and marker.get("weights_sketch") and float(marker.get("update_norm") or 0) > 0:
        gap = weights_difference(parse_sketch(marker["weights_sketch"]), parse_sketch(sketch))
        again["distance"] = float(f"{gap / float(marker['update_norm']):.3g}")  # a fraction of the training's update
        close = again["distance"] <= SAME_MODEL_DISTANCE
    if same or close or archive_root is None:
        marker.setdefault("remade", []).append(again)
        write_json_atomic(path, marker)
        if same:
            return f"       {stage} made again in {seconds:.0f} s: the same weights as its first run ({weights})", False
        if close:
            return (f"       {stage} made again in {seconds:.0f} s: other bits ({weights}) but the same model as its "
                    f"first run ({first}): {again['distance']:.3g} of its training's update apart "
                    f"(<= {SAME_MODEL_DISTANCE:g})"), False
        return (f"run_eto.sh: warning: {stage} made again gives other weights ({weights}) than its first run "
                f"({first}); the evaluations already finished are of the first model"), False
    archive = supersede(folder, marker, episodes_root or "", os.path.join(archive_root, f"{stage}-{first}"))
    marker.setdefault("remade", []).append({**again, "replaced": first, "superseded": archive["stages"],
                                            "archive": archive["folder"]})
    marker["weights"] = weights
    if sketch:
        marker["weights_sketch"] = sketch
    write_json_atomic(path, marker)
    far = f", {again['distance']:.3g} of its training's update apart" if "distance" in again else ""
    return (f"run_eto.sh: {stage} made again on this machine gives other weights ({weights}{far}) than its first run "
            f"({first}): the {len(archive['stages'])} stage(s) that finished after it may have used the first model "
            f"and are made again (the first ones are kept in {archive['folder']})"), True


def supersede(folder: str, marker: dict, episodes_root: str, archive: str) -> dict:
    """Move aside every stage that finished after ``marker``'s (except those that use no model):
    their markers, the episodes of its model and of the models trained after it, their pairs or
    data files; the later models' checkpoints present here are renamed. Conservative on purpose:
    markers do not record which model a stage read, and a finished stage's time is certain."""
    after = [m for m in read_markers(folder) if m.get("finished_at", 0) > marker.get("finished_at", 0)
             and m["stage"] not in MODEL_FREE_STAGES and m.get("method") != "expert"]
    models = [marker["model"]] + [m["model"] for m in after if m.get("model") and not m.get("unchanged")]
    while os.path.exists(archive):  # superseded before with the same first weights: keep both
        archive += "+"
    moved = {}

    def move(source: str, target: str) -> None:
        if os.path.exists(source) and source not in moved:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.move(source, target)
            moved[source] = target

    for m in after:
        move(marker_path(folder, m["stage"]), os.path.join(archive, "stages", f"{m['stage']}.json"))
        for key in ("pairs", "data"):
            if m.get(key):
                move(m[key], os.path.join(archive, key, os.path.basename(m[key])))
    for model in dict.fromkeys(models):
        move(os.path.join(episodes_root, os.path.basename(os.path.normpath(model))),
             os.path.join(archive, "episodes", os.path.basename(os.path.normpath(model))))
        if model != marker["model"] and os.path.isdir(model):
            move(model, f"{os.path.normpath(model)}.superseded-{os.path.basename(archive)}")
    record = {"stage": marker["stage"], "first_weights": marker.get("weights"), "at": time.time(),
              "stages": [m["stage"] for m in after], "moved": moved}
    os.makedirs(archive, exist_ok=True)
    write_json_atomic(os.path.join(archive, "superseded.json"), record)
    return {"folder": archive, "stages": record["stages"]}


def read_markers(folder: str) -> List[dict]:
    markers = [read_json_or_none(p) for p in glob.glob(os.path.join(folder, "*.json"))]
    return sorted((m for m in markers if isinstance(m, dict) and "stage" in m), key=lambda m: m.get("finished_at", 0))


def collect_rows(markers: Sequence[dict]) -> "OrderedDict[str, dict]":
    """row name -> {"splits": {split: summary}, "pairs": n}, in the order rows first appear."""
    rows: "OrderedDict[str, dict]" = OrderedDict()
    for marker in markers:
        if "row" not in marker:
            continue
        row = rows.setdefault(marker["row"].replace("_", " "), {"splits": {}, "pairs": None})
        if "episodes" in marker:
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
    text = markdown(rows, markers, title)
    write_text_atomic(output + ".md", text)
    if any(row["splits"] for row in rows.values()):
        plot(rows, output + ".png", title)
    build_comparison(markers, os.path.join(os.path.dirname(output), "compare"), title)
    return text


def build_comparison(markers: Sequence[dict], output: str, title: str) -> None:
    found = compare.evaluations(markers)
    rows = compare.table_rows(found)
    # A split that only the model-free expert played compares no method: it is left out.
    played = {split for method, by_round in found.items() if method != "expert"
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
    mark = sub.add_parser("mark", help="record a finished stage")
    mark.add_argument("--dir", required=True, help="the run's marker folder")
    mark.add_argument("--stage", required=True)
    mark.add_argument("--seconds", type=float, required=True, help="the stage's wall time")
    mark.add_argument("fields", nargs="*", help="key=value facts about the stage (row, split, episodes, pairs, ...)")
    remade = sub.add_parser("remade", help="record that a finished training stage ran again, and whether its weights match")
    remade.add_argument("--dir", required=True, help="the run's marker folder")
    remade.add_argument("--stage", required=True)
    remade.add_argument("--seconds", type=float, required=True)
    remade.add_argument("--weights", required=True, help="fingerprint of the model made again")
    remade.add_argument("--sketch", default=None, help="the model's weights sketch (python -m eto.weights sketch): "
                        "other bits within %g of the training's update (update_norm) from the first run are the same model"
                        % SAME_MODEL_DISTANCE)
    remade.add_argument("--archive", default=None,
                        help="with other weights, move the stages that finished after it (and their episodes, "
                             "pairs and data) into ARCHIVE/<stage>-<first weights>/ and exit 3, so the run makes "
                             "them again; without it, only warn")
    remade.add_argument("--episodes_root", default=None, help="the run's episode folder (one subfolder per model)")
    report = sub.add_parser("build", help="write <output>.md and <output>.png from the markers")
    report.add_argument("--dir", required=True, help="the run's marker folder")
    report.add_argument("--output", required=True, help="path without extension")
    report.add_argument("--title", default="ETO run")
    args = parser.parse_args(argv)
    if args.command == "mark":
        bad = [f for f in args.fields if "=" not in f]
        if bad:
            parser.error(f"fields must be key=value, got {bad[0]!r}")
        write_marker(args.dir, args.stage, args.seconds, dict(f.split("=", 1) for f in args.fields))
    elif args.command == "remade":
        line, superseded = record_remade(args.dir, args.stage, args.seconds, args.weights, args.episodes_root,
                                         args.archive, args.sketch)
        print(line)
        return RESTART if superseded else 0
    else:
        print(build(args.dir, args.output, args.title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
