"""A browsable page of a run: what the agent did, episode by episode, and what DPO trained on.

    python -m eval_agent.view logs/<exp>            # writes logs/<exp>/view.html

One self-contained HTML file (no server, no network; open it from disk): the run's report and
comparison with their plots; per evaluation, a task table (sortable, filterable); the same tasks
across every evaluation of a split side by side; an episode as the model saw it (format errors
marked); and per round, the pairs, chosen and rejected aligned turn by turn from the first turn
where they differ. ``run_eto.sh`` writes it after each report. Addresses inside the page
(``view.html#episode=2/13_225``, ``#pair=0/3``, ``#tasks=test``) open a view directly.
"""

from __future__ import annotations

import argparse
import base64
import glob
import json
import os
import sys
from typing import List, Optional, Sequence

from eval_agent import compare
from eval_agent.report import read_markers
from eval_agent.results import sample_folders
from eto.io import read_json_or_none, write_text_atomic

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "view_template.html")
TYPE_FIELDS = ("task_name", "task_type", "department", "category")  # sciworld, alfworld, webshop, other
IMAGES = ("report.png", "compare.png", "efficiency.png")


def task_type(task: dict) -> str:
    return next((str(task[f]) for f in TYPE_FIELDS if isinstance(task, dict) and task.get(f) is not None), "")


def turn_pairs(turns) -> List[list]:
    """[[from, value], ...]: turns as the page's script reads them (compact)."""
    return [[t.get("from", ""), t.get("value", "")] for t in turns or () if isinstance(t, dict)]


def episode_entry(record: dict) -> Optional[dict]:
    meta = record.get("meta") if isinstance(record, dict) else None
    if not isinstance(meta, dict) or not isinstance(record.get("conversations"), list):
        return None
    return {"id": str(meta.get("id")), "type": task_type(meta.get("task")), "reward": meta.get("reward", 0),
            "success": bool(meta.get("success")), "steps": meta.get("steps", 0),
            "reason": meta.get("terminate_reason") or "", "error": meta.get("error"),
            "task_turn": meta.get("task_turn"), "prefix_steps": meta.get("prefix_steps"),
            "turns": turn_pairs(record["conversations"])}


def load_episodes(folder: str) -> List[dict]:
    entries = (episode_entry(read_json_or_none(p) or {}) for p in sorted(glob.glob(os.path.join(folder, "[!_]*.json"))))
    return [e for e in entries if e is not None]


def evaluation_name(marker: dict) -> str:
    method, round_ = compare.method_and_round(marker)
    if method == "bon":
        return f"Best-of-{marker.get('samples', 'N')}"
    return compare.row_name(method, round_) if method else str(marker.get("row", marker["stage"])).replace("_", " ")


def collect_evaluations(markers: Sequence[dict]) -> List[dict]:
    """One entry per evaluation folder (each sample of a Best-of-N its own), in the order run."""
    evaluations = []
    for marker in markers:
        if "episodes" not in marker or "_train" in os.path.basename(marker["episodes"]):
            continue
        folder, name, split = marker["episodes"], evaluation_name(marker), marker.get("split", "test")
        for path in sample_folders(folder):
            label = name if path == folder else f"{name} sample {path.rsplit('_', 1)[1]}"
            episodes = load_episodes(path)
            if episodes:
                evaluations.append({"name": label, "split": split, "stage": marker["stage"], "folder": path,
                                    "episodes": episodes})
    return evaluations


def first_divergence(chosen: Sequence[dict], rejected: Sequence[dict]) -> int:
    """Index of the first turn where the two sides differ (the shorter one's length if none does)."""
    for i, (a, b) in enumerate(zip(chosen, rejected)):
        if a.get("value") != b.get("value") or a.get("from") != b.get("from"):
            return i
    return min(len(chosen), len(rejected))


def collect_pairs(markers: Sequence[dict]) -> List[dict]:
    sets = []
    for marker in markers:
        pairs = read_json_or_none(marker["pairs"]) if "pairs" in marker else None
        if not isinstance(pairs, list):
            continue
        entries = []
        for pair in pairs:
            if not isinstance(pair, dict):
                continue
            chosen, rejected = pair.get("chosen") or [], pair.get("rejected") or []
            entries.append({"id": str(pair.get("id")), "chosen_reward": pair.get("chosen_reward"),
                            "rejected_reward": pair.get("rejected_reward"),
                            "prompt": turn_pairs(pair.get("prompt")), "chosen": turn_pairs(chosen),
                            "rejected": turn_pairs(rejected),
                            "diverge": first_divergence(chosen, rejected)})
        sets.append({"name": str(marker.get("row", marker["stage"])).replace("_", " "), "file": marker["pairs"],
                     "pairs": entries})
    return sets


def image_uri(path: str) -> Optional[str]:
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


def markdown_html(path: str) -> str:
    from markdown_it import MarkdownIt

    if not os.path.isfile(path):
        return ""
    with open(path, encoding="utf-8") as f:
        return MarkdownIt("commonmark", {"html": False}).enable("table").render(f.read())


def build_page(log_dir: str, title: Optional[str] = None) -> str:
    import jinja2

    stages = os.path.join(log_dir, "stages")
    if not os.path.isdir(stages):
        raise FileNotFoundError(f"{log_dir} has no stages/ folder: not the log folder of a run_eto.sh run")
    markers = read_markers(stages)
    data = {"title": title or os.path.basename(os.path.normpath(log_dir)),
            "evaluations": collect_evaluations(markers), "pairs": collect_pairs(markers)}
    # "</" would end the <script> element the data sits in.
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    images = {name: uri for name in IMAGES if (uri := image_uri(os.path.join(log_dir, name)))}
    with open(TEMPLATE, encoding="utf-8") as f:
        template = jinja2.Environment(autoescape=True).from_string(f.read())
    return template.render(title=data["title"], payload=payload, images=images,
                           report=markdown_html(os.path.join(log_dir, "report.md")),
                           comparison=markdown_html(os.path.join(log_dir, "compare.md")))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log_dir", help="a run's log folder, logs/<exp>")
    parser.add_argument("--output", default=None, help="default: <log_dir>/view.html")
    parser.add_argument("--title", default=None, help="default: the experiment's name")
    args = parser.parse_args(argv)
    try:
        page = build_page(args.log_dir, args.title)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    output = args.output or os.path.join(args.log_dir, "view.html")
    write_text_atomic(output, page)
    print(f"{output} ({os.path.getsize(output) / 1e6:.1f} MB); open it in a browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
