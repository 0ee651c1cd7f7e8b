"""Per-task results of an evaluation folder, and their statistics: Best-of-N / mean-of-N over
samples, and bootstrap confidence intervals over tasks (of a mean, and of a paired difference).

A folder is what ``eval_agent.main`` writes: one ``<task_id>.json`` per episode, or, with
``--num_samples N``, one such folder per sample (``sample_1`` ... ``sample_N``). Episodes that
ended in an agent error, and unreadable files, are left out (they are replayed by a rerun).
"""

from __future__ import annotations

import glob
import os
import re
import sys
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

from eto.io import read_json_or_none
from eto.records import episode_problem
from eval_agent.runner import SAMPLE_FOLDER

Outcome = Dict[str, float]  # reward, success (0/1), steps
SAMPLE_DIR = re.compile("^" + SAMPLE_FOLDER.format(r"(\d+)") + "$")


def sample_folders(folder: str) -> List[str]:
    """The sample folders of a multi-sample evaluation in sample order, else ``[folder]``."""
    found = []
    for path in glob.glob(os.path.join(folder, "sample_*")):
        match = SAMPLE_DIR.match(os.path.basename(path))
        if match and os.path.isdir(path):
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)] or [folder]


def read_episodes(folder: str, counts: Optional[Counter] = None) -> List[dict]:
    """The usable, error-free episode records of one folder, in file order. With ``counts``,
    unreadable files are warned about and counted, and so are episodes with an agent error."""
    records = []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        if os.path.basename(path).startswith("_"):  # _summary.json
            continue
        record = read_json_or_none(path)
        problem = episode_problem(record)
        if problem:
            if counts is not None:
                counts["unreadable episode files"] += 1
                print(f"warning: skipping episode file {path}: {problem}", file=sys.stderr)
        elif record["meta"].get("error") is not None:
            if counts is not None:
                counts["episodes with an agent error"] += 1
        else:
            records.append(record)
    return records


def load_outcomes(folder: str) -> Dict[str, Outcome]:
    """task id -> outcome of the folder's finished, error-free episodes (one sample's folder)."""
    outcomes: Dict[str, Outcome] = {}
    for record in read_episodes(folder):
        meta = record["meta"]
        outcomes[str(meta["id"])] = {"reward": float(meta["reward"]), "success": float(bool(meta.get("success"))),
                                     "steps": float(meta.get("steps", 0))}
    return outcomes


def combine_samples(folder: str, how: str) -> Dict[str, Outcome]:
    """Per-task outcome over the samples of ``folder``: ``best`` (the sample with the highest
    reward, first on ties) or ``mean`` (each field averaged over the task's samples)."""
    return _combine(_outcomes_by_task(folder), how)


def _outcomes_by_task(folder: str) -> Dict[str, List[Outcome]]:
    by_task: Dict[str, List[Outcome]] = {}
    for sample in sample_folders(folder):
        for task_id, outcome in load_outcomes(sample).items():
            by_task.setdefault(task_id, []).append(outcome)
    return by_task


def _combine(by_task: Dict[str, List[Outcome]], how: str) -> Dict[str, Outcome]:
    if how not in ("best", "mean"):
        raise ValueError(f"unknown way to combine samples: {how!r}")
    if how == "best":
        return {t: max(outs, key=lambda o: o["reward"]) for t, outs in by_task.items()}
    return {t: {k: sum(o[k] for o in outs) / len(outs) for k in outs[0]} for t, outs in by_task.items()}


def best_and_mean_of_samples(folder: str) -> Tuple[Dict[str, float], Dict[str, float]]:
    """(task id -> best reward, task id -> mean reward) over the samples of ``folder``."""
    by_task = _outcomes_by_task(folder)  # the episode files are read once for both
    best, mean = _combine(by_task, "best"), _combine(by_task, "mean")
    return {t: o["reward"] for t, o in best.items()}, {t: o["reward"] for t, o in mean.items()}


def bootstrap_mean_ci(values: Sequence[float], level: float = 0.95, resamples: int = 10_000,
                      seed: int = 0) -> Tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling the values (tasks) with replacement.
    Seeded, so that a report regenerated from the same episodes shows the same interval."""
    import numpy as np

    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values to bootstrap")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_difference(method: Dict[str, float], baseline: Dict[str, float],
                      level: float = 0.95) -> Optional[Dict[str, float]]:
    """Mean of (method - baseline) over the tasks both have, with its bootstrap interval; None
    when they share no task."""
    common = sorted(set(method) & set(baseline))
    if not common:
        return None
    diffs = [method[t] - baseline[t] for t in common]
    low, high = bootstrap_mean_ci(diffs, level)
    return {"mean": sum(diffs) / len(diffs), "low": low, "high": high, "n": len(common), "p": sign_flip_p(diffs)}


def sign_flip_p(diffs: Sequence[float], permutations: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value of a paired permutation test: under "no difference" each task's
    difference is as likely negative as positive, so the mean is compared with those of random
    sign flips ((1 + at least as far from 0) / (1 + permutations); seeded, as the intervals)."""
    import numpy as np

    data = np.asarray(diffs, dtype=float)
    observed = abs(data.mean())
    if observed == 0:
        return 1.0
    signs = np.random.default_rng(seed).choice((-1.0, 1.0), size=(permutations, data.size))
    extreme = np.abs((signs * data).mean(axis=1)) >= observed - 1e-12
    return float((1 + extreme.sum()) / (1 + permutations))
