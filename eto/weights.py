"""Fingerprints of a model folder's weights, to tell whether a model trained again is the same one.

    python -m eto.weights sketch MODEL_DIR                  # the sketch (one line)
    python -m eto.weights facts MODEL_DIR --start BASE_DIR  # weights_sketch=... update_norm=...
    python -m eto.weights difference SKETCH_A SKETCH_B      # ||w_a - w_b||, estimated

A run records two fingerprints per trained model (``eto.pipeline``): a hash of its safetensors
(``fingerprint``: the same bits) and this sketch. CPU training is not bit-identical across processors: the same recipe on
another CPU gives weights that differ in their last bits, which a hash calls different. The sketch
measures how different. It is a count sketch of all floating-point weights (each weight added,
with a random sign, into one of ``BUCKETS`` sums, in float64; the signs and buckets come from a
generator seeded by the tensor's name) plus their norm. It is linear, so from sketches alone

    ||sketch(a) - sketch(b)||  ~  ||w_a - w_b||      (within about sqrt(2 / BUCKETS) of itself)

A training's own update, ||w - w_start||, is recorded with its sketch (``update_norm``): a model
trained again is the same one when it lies within ``SAME_MODEL_DISTANCE`` of that update from the
first. Rounding noise from other kernels is orders of magnitude below it; a training that differs
in anything that matters (data, learning rate, steps) is not (results/sciworld-evidence/pilots.md).
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import sys
import zlib
from typing import List, Optional, Sequence

from eto.io import DataError

BUCKETS = 64
CHUNK = 1 << 22  # weights per generator draw: bounds the memory of the random indices
SAME_MODEL_DISTANCE = 0.01  # at most this fraction of the training's update apart: the same model


def sketch(folder: str) -> List[float]:
    """[norm, bucket sums...] of the floating-point weights in ``folder``'s *.safetensors."""
    import torch
    from safetensors import safe_open

    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise DataError(f"{folder}: no *.safetensors weights to fingerprint")
    sums = torch.zeros(BUCKETS, dtype=torch.float64)
    squares = 0.0
    for path in files:
        with safe_open(path, framework="pt") as weights:
            for name in sorted(weights.keys()):
                tensor = weights.get_tensor(name)
                if not tensor.is_floating_point():
                    continue
                flat = tensor.reshape(-1).to(torch.float64)
                squares += float(flat.square().sum())
                generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
                for start in range(0, flat.numel(), CHUNK):
                    part = flat[start:start + CHUNK]
                    draw = torch.randint(0, 2 * BUCKETS, (part.numel(),), generator=generator)
                    signed = torch.where(draw % 2 == 0, part, -part)
                    sums.index_add_(0, draw // 2, signed)
    return [math.sqrt(squares)] + sums.tolist()


def fingerprint(folder: str) -> str:
    """The same bits: the first 16 hex digits of the SHA-256 of the folder's safetensors, in name order."""
    import hashlib

    digest = hashlib.sha256()
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise DataError(f"{folder}: no *.safetensors weights to fingerprint")
    for path in files:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def facts(model: str, start: Optional[str] = None) -> dict:
    """A trained model's marker facts: its sketch and, given the model it started from, the norm
    of its training's update."""
    trained = sketch(model)
    out = {"weights_sketch": format_sketch(trained)}
    if start:
        out["update_norm"] = f"{difference(trained, sketch(start)):.6g}"
    return out


def format_sketch(values: Sequence[float]) -> str:
    return ",".join(repr(float(v)) for v in values)


def parse_sketch(text: str) -> List[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise DataError(f"not a weights sketch (comma-separated numbers): {text[:60]!r}") from None
    if len(values) != BUCKETS + 1 or values[0] <= 0:
        raise DataError(f"a weights sketch has {BUCKETS + 1} numbers, the first the norm; got {len(values)}")
    return values


def difference(a: Sequence[float], b: Sequence[float]) -> float:
    """Estimated ||w_a - w_b|| from two sketches."""
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a[1:], b[1:])))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("sketch", help="print the sketch of a model folder's weights")
    make.add_argument("model", help="a folder with *.safetensors")
    described = sub.add_parser("facts", help="print a trained model's marker facts: its sketch and the norm of its update")
    described.add_argument("model", help="the trained model's folder")
    described.add_argument("--start", default=None, help="the folder of the model its training started from")
    compare = sub.add_parser("difference", help="print ||w_a - w_b|| estimated from two sketches")
    compare.add_argument("a")
    compare.add_argument("b")
    args = parser.parse_args(argv)
    try:
        if args.command == "sketch":
            print(format_sketch(sketch(args.model)))
        elif args.command == "facts":
            print(" ".join(f"{key}={value}" for key, value in facts(args.model, args.start).items()))
        else:
            print(f"{difference(parse_sketch(args.a), parse_sketch(args.b)):.6g}")
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
