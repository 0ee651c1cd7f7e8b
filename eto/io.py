"""File I/O for every stage: atomic writes, and JSON reads that fail with one clear line.

A file this project writes is either absent, its old content or its whole new content, never
a part: everything is written beside its target and moved into place by ``replace_atomic``,
the one place that renames (``os.replace`` is atomic on one file system).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Optional


class DataError(ValueError):
    """A file that cannot be used; the message is one line naming the file and the problem."""


def replace_atomic(source: str, target: str) -> None:
    """Move ``source`` (a file or a folder) onto ``target`` in one step."""
    os.replace(source, target)


def staging_path(path: str) -> str:
    """A sibling path, unique to this process and thread, to build ``path``'s new content in."""
    return f"{path}.{os.getpid()}.{threading.get_ident()}.partial"


def write_text_atomic(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = staging_path(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        replace_atomic(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json_atomic(path: str, data: Any, *, compact: bool = False, newline: bool = False) -> None:
    """JSON with one-space indents (``compact``: no whitespace at all, for large data files)."""
    text = (json.dumps(data, ensure_ascii=False, separators=(",", ":")) if compact
            else json.dumps(data, indent=1, ensure_ascii=False))
    write_text_atomic(path, text + ("\n" if newline else ""))


def read_json(path: str, what: str = "file") -> Any:
    """The JSON in ``path``; a missing or malformed file raises ``DataError`` naming it."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such {what}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot be read ({error})") from None


def read_json_or_none(path: str) -> Optional[Any]:
    """The JSON in ``path``, or None if it is missing or unreadable (for caches and markers)."""
    try:
        return read_json(path)
    except DataError:
        return None
