"""The SFT trajectory format (FastChat's, as the original ETO uses it) and its one validator.

    [{"id": "...", "conversations": [{"from": "human", "value": <instruction>},
                                     {"from": "gpt", "value": "OK"},
                                     {"from": "human", "value": <task and first observation>},
                                     {"from": "gpt", "value": "Thought: ...\\nAction: ..."},
                                     {"from": "human", "value": "Observation: ..."}, ...]}]

Turns alternate human/gpt from the first; the first two are the instruction and the agent's
acknowledgement, the third is the task. ``construct_preference.py`` relies on that layout.
Published ETO files and regenerated ones go through the same ``load_sft_data``.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Sequence

ROLES = ("human", "gpt")
FROM_TO_ROLE = {"human": "user", "gpt": "assistant"}
ROLE_TO_FROM = {role: name for name, role in FROM_TO_ROLE.items()}
MIN_TURNS = 4  # instruction, acknowledgement, task, at least one agent turn


class SFTDataError(ValueError):
    """A trajectory file that cannot be used; the message is one line naming the record."""


def check_turns(turns, where: str, name: str, first: str = "human") -> None:
    """``turns`` is a non-empty list of ``{from, value}`` turns alternating from ``first``."""
    if turns is None:
        raise SFTDataError(f"{where}: missing field {name!r}")
    if not isinstance(turns, list) or not turns:
        raise SFTDataError(f"{where}: {name!r} is empty or not a list")
    start = ROLES.index(first)
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise SFTDataError(f"{where}: {name} turn {i} needs 'from' and 'value'")
        if not isinstance(turn["value"], str):
            raise SFTDataError(f"{where}: {name} turn {i} 'value' must be a string")
        expected = ROLES[(start + i) % 2]
        if turn["from"] != expected:
            raise SFTDataError(f"{where}: {name} turn {i} is from {turn['from']!r}, expected {expected!r} "
                               f"(turns alternate human/gpt, starting with {first!r})")


def record_label(record, index: int, fields: str) -> str:
    """'record 3 (id 'x')' for messages; raises if ``record`` is not an object with an id."""
    if not isinstance(record, dict):
        raise SFTDataError(f"record {index}: expected an object with {fields}, got {type(record).__name__}")
    if "id" not in record:
        raise SFTDataError(f"record {index}: missing field 'id'")
    return f"record {index} (id {record['id']!r})"


def validate_record(record, index: int) -> None:
    where = record_label(record, index, "'id' and 'conversations'")
    turns = record.get("conversations")
    check_turns(turns, where, "conversations")
    if len(turns) < MIN_TURNS:
        raise SFTDataError(f"{where}: {len(turns)} turns; need the instruction, the acknowledgement, "
                           "the task and at least one agent turn")


def load_records(path: str, validate) -> List[Dict]:
    """The JSON list in ``path``, each record checked by ``validate(record, index)``, ids unique."""
    if not os.path.isfile(path):
        raise SFTDataError(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8") as f:
            records = json.load(f)
    except json.JSONDecodeError as error:
        raise SFTDataError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(records, list):
        raise SFTDataError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    seen = set()
    for index, record in enumerate(records):
        try:
            validate(record, index)
        except SFTDataError as error:
            raise SFTDataError(f"{path}: {error}") from None
        if record["id"] in seen:
            raise SFTDataError(f"{path}: record {index}: duplicate id {record['id']!r}")
        seen.add(record["id"])
    return records


def load_sft_data(path: str) -> List[Dict]:
    """Every record of ``path``, validated; raises ``SFTDataError`` on the first bad one."""
    return load_records(path, validate_record)


def to_messages(conversations: Sequence[Dict]) -> List[Dict[str, str]]:
    """FastChat turns -> chat-template messages."""
    return [{"role": FROM_TO_ROLE[t["from"]], "content": t["value"]} for t in conversations]


def write_sft_data(path: str, records: Sequence[Dict]) -> None:
    """Validate and write atomically (a partial file never replaces a good one)."""
    for index, record in enumerate(records):
        validate_record(record, index)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.partial"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(list(records), f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)
