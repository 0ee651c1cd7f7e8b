"""Stage markers: one JSON file per finished stage (``<log_dir>/stages/<stage>.json``), written
last, so a run resumes at the first stage without one. A marker records the stage's wall time and
what it made: ``row``/``split``/``episodes`` for an evaluation, ``pairs`` or ``data`` for a data
file, ``model`` and its fingerprints for a training (``weights``: a hash of its safetensors;
``weights_sketch`` and ``update_norm``: ``eto.weights``).

A run continued on another machine (markers, episodes and pairs are small enough to commit;
checkpoints are not) trains a missing model again when a later stage needs it. ``record_remade``
notes that on the marker and says whether the stages after it still stand.
"""

from __future__ import annotations

import glob
import os
import shutil
import time
from typing import Dict, List, Optional, Tuple

from eto.io import read_json_or_none, write_json_atomic
from eto.pipeline.paths import marker_path
from eto.weights import SAME_MODEL_DISTANCE, difference, parse_sketch

# Stages that use no trained model: a model made again does not change them.
MODEL_FREE_STAGES = ("expert_data",)


def write_marker(folder: str, stage: str, seconds: float, fields: Dict[str, str]) -> None:
    os.makedirs(folder, exist_ok=True)
    write_json_atomic(marker_path(folder, stage), {"stage": stage, "finished_at": time.time(), "seconds": seconds, **fields})


def read_marker(folder: str, stage: str) -> Optional[dict]:
    marker = read_json_or_none(marker_path(folder, stage))
    return marker if isinstance(marker, dict) else None


def read_markers(folder: str) -> List[dict]:
    """Every readable marker in ``folder``, in the order the stages finished."""
    markers = [read_json_or_none(p) for p in glob.glob(os.path.join(folder, "*.json"))]
    return sorted((m for m in markers if isinstance(m, dict) and "stage" in m), key=lambda m: m.get("finished_at", 0))


def record_remade(folder: str, stage: str, seconds: float, weights: str,
                  episodes_root: Optional[str] = None, archive_root: Optional[str] = None,
                  sketch: Optional[str] = None) -> Tuple[str, bool]:
    """Note on a finished training stage's marker that it ran again (its model was missing here).
    Returns a line for the user and whether later stages were superseded. CPU training is not
    bit-identical across processors: other bits within ``SAME_MODEL_DISTANCE`` of the first run's
    (as a fraction of its training's update, ``eto.weights``) are the same model, and what finished
    after it stands. Further off (or with no sketch to compare), what finished after it may have
    used another model, so it is moved aside (``supersede``) to be made again."""
    marker = read_marker(folder, stage)
    if marker is None:
        raise SystemExit(f"error: no readable marker for stage '{stage}' in {folder}")
    first = marker.get("weights") or "unrecorded"  # also names the archive folder: no space
    same = first == weights
    again = {"at": time.time(), "seconds": seconds, "weights": weights, "same_weights": same}
    close = False
    if not same and sketch and marker.get("weights_sketch") and float(marker.get("update_norm") or 0) > 0:
        gap = difference(parse_sketch(marker["weights_sketch"]), parse_sketch(sketch))
        again["distance"] = float(f"{gap / float(marker['update_norm']):.3g}")  # a fraction of the training's update
        close = again["distance"] <= SAME_MODEL_DISTANCE
    path = marker_path(folder, stage)
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
             and m["stage"] not in MODEL_FREE_STAGES and m.get("model_free") != "1"
             and m.get("method") != "expert"]  # an expert marker from before model_free
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
        name = os.path.basename(os.path.normpath(model))
        move(os.path.join(episodes_root, name), os.path.join(archive, "episodes", name))
        if model != marker["model"] and os.path.isdir(model):
            move(model, f"{os.path.normpath(model)}.superseded-{os.path.basename(archive)}")
    record = {"stage": marker["stage"], "first_weights": marker.get("weights"), "at": time.time(),
              "stages": [m["stage"] for m in after], "moved": moved}
    os.makedirs(archive, exist_ok=True)
    write_json_atomic(os.path.join(archive, "superseded.json"), record)
    return {"folder": archive, "stages": record["stages"]}
