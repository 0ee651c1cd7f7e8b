"""When a round has nothing to learn from. A round whose data came out empty (no pair differs in
reward, no episode succeeded), or, for RFT, holds nothing its policy was not trained on already,
trains nothing: its policy stays, and its rows repeat that policy's evaluation
(``stages.Run.keep``). Training on the same data from the same start with the same settings would
make that policy again (the same bits on CPU with ``cpu_train_portable``)."""

from __future__ import annotations

from eto.io import DataError, read_json


def _records(path: str) -> list:
    try:
        records = read_json(path, "data file")
    except DataError as error:
        raise DataError(f"cannot read {path} ({error}); delete the stage marker that made it to make it again") from None
    if not isinstance(records, list):
        raise DataError(f"{path} does not hold a JSON list; delete the stage marker that made it to make it again")
    return records


def no_records(path: str) -> bool:
    """True when the JSON list in ``path`` is empty."""
    return not _records(path)


def same_records(path: str, other: str, other_limit: int = 0) -> bool:
    """True when ``path`` holds the records of ``other`` (its first ``other_limit``; 0: all)."""
    return _records(path) == _records(other)[:other_limit or None]
