"""Copy an experiment's small, finished outputs into a folder meant to be committed.

    python scripts/publish_results.py logs/evidence results/sciworld-evidence --preset presets/evidence.toml

Copies the run's reports (report.md/png: stages, pairs and wall times; compare.md/png: methods
with intervals; compare_tasks.csv: every method's reward on every task; efficiency.png) after
rebuilding them from the stage markers, writes ``stage_times.csv`` (one line per finished stage:
its wall time and what it recorded: DPO settings, model fingerprints) and a copy of the preset.
Episodes, pairs and checkpoints stay where they are (they are large); the reports name them. Run it after any stage: it publishes what
is finished so far, so that a run continued on another machine knows what is done.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from eval_agent.report import build, csv_text, read_markers

REPORTS = ("report.md", "report.png", "compare.md", "compare.png", "compare_tasks.csv", "efficiency.png")
STAGE_FIELDS = ("stage", "seconds", "finished_at", "row", "split", "pairs", "model", "episodes", "unchanged",
                "beta", "lr", "loss", "weights", "remade_seconds")


def stage_line(marker: dict) -> dict:
    """A marker's facts for stage_times.csv. A training stage made again on a later machine (its
    checkpoint was not there) shows the weights it has now and how long that last training took."""
    line = {k: marker.get(k, "") for k in STAGE_FIELDS}
    if marker.get("remade"):
        line.update(weights=marker["remade"][-1]["weights"], remade_seconds=marker["remade"][-1]["seconds"])
    return line


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("log_dir", help="the experiment's log folder (logs/<exp>)")
    p.add_argument("output", help="folder to copy into (created if missing)")
    p.add_argument("--preset", default=None, help="the preset file the run used, copied beside the reports")
    p.add_argument("--title", default=None, help="report title (default: the experiment's name)")
    args = p.parse_args(argv)
    stages = os.path.join(args.log_dir, "stages")
    markers = read_markers(stages)
    if not markers:
        print(f"error: no finished stage in {stages}", file=sys.stderr)
        return 2
    if args.preset and not os.path.isfile(args.preset):
        print(f"error: preset {args.preset} does not exist", file=sys.stderr)
        return 2
    build(stages, os.path.join(args.log_dir, "report"), args.title or os.path.basename(os.path.normpath(args.log_dir)))
    os.makedirs(args.output, exist_ok=True)
    copied = []
    for name in REPORTS:
        source = os.path.join(args.log_dir, name)
        if os.path.isfile(source):
            shutil.copyfile(source, os.path.join(args.output, name))
            copied.append(name)
    lines = [stage_line(m) for m in markers]
    with open(os.path.join(args.output, "stage_times.csv"), "w", encoding="utf-8") as f:
        f.write(csv_text(lines, STAGE_FIELDS))
    if args.preset:
        shutil.copyfile(args.preset, os.path.join(args.output, os.path.basename(args.preset)))
        copied.append(os.path.basename(args.preset))
    print(f"{len(markers)} finished stages ({sum(float(m.get('seconds', 0)) for m in markers) / 3600:.2f} h); "
          f"copied {', '.join(copied + ['stage_times.csv'])} -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
