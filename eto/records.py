"""The records every stage reads and writes, with their validation (one-line errors).

Turns are FastChat's ``{"from": "human"|"gpt", "value": str}``, as the original ETO stores them.

- **SFT record** (expert trajectories, ``data/<task>_sft.json``; published and regenerated
  files alike): ``{"id", "conversations": [instruction, "OK", task, agent reply, observation,
  ...]}``; turns alternate from a human turn; at least one agent turn after the task. Extra
  fields (``reward`` for WebShop, ``game_file`` for published ALFWorld) are kept.
- **Episode** (one file per played task, ``outputs/<model>/<config><exp>/<task_id>.json``):
  ``{"meta": {id, task, steps, reward, finished, success, terminate_reason, error, task_turn,
  timing, reward_by_step}, "conversations": [...]}``, the whole dialogue the model saw (``task_turn`` = index of
  the task's own turn, after any in-context example).
- **Preference pair** (``construct_preference.py`` -> DPO): ``{"id", "prompt": [instruction,
  "OK", task], "chosen": [agent, obs, ..., agent], "rejected": [...]}`` plus rewards.

A file of records is a JSON list; ids are unique within it.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence

from eto.io import DataError, read_json, write_json_atomic

ROLES = ("human", "gpt")
FROM_TO_ROLE = {"human": "user", "gpt": "assistant"}
ROLE_TO_FROM = {role: name for name, role in FROM_TO_ROLE.items()}
MIN_SFT_TURNS = 4  # instruction, acknowledgement, task, at least one agent turn
PROMPT_TURNS = 3   # instruction, "OK", task: the opening of every SFT record and pair


class RecordError(DataError):
    """A record that cannot be used; the message is one line naming the record."""


# ------------------------------------------------------------------------------ turns
def check_turns(turns, where: str, name: str, first: str = "human") -> None:
    """``turns`` is a non-empty list of ``{from, value}`` turns alternating from ``first``."""
    if turns is None:
        raise RecordError(f"{where}: missing field {name!r}")
    if not isinstance(turns, list) or not turns:
        raise RecordError(f"{where}: {name!r} is empty or not a list")
    start = ROLES.index(first)
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise RecordError(f"{where}: {name} turn {i} needs 'from' and 'value'")
        if not isinstance(turn["value"], str):
            raise RecordError(f"{where}: {name} turn {i} 'value' must be a string")
        expected = ROLES[(start + i) % 2]
        if turn["from"] != expected:
            raise RecordError(f"{where}: {name} turn {i} is from {turn['from']!r}, expected {expected!r} "
                              f"(turns alternate human/gpt, starting with {first!r})")


def to_messages(turns: Sequence[Dict]) -> List[Dict[str, str]]:
    """FastChat turns -> chat-template messages."""
    return [{"role": FROM_TO_ROLE[t["from"]], "content": t["value"]} for t in turns]


def to_turns(messages: Sequence[Dict[str, str]]) -> List[Dict[str, str]]:
    """Chat-template messages -> FastChat turns."""
    return [{"from": ROLE_TO_FROM[m["role"]], "value": m["content"]} for m in messages]


def end_on_agent_turn(turns: List[dict]) -> List[dict]:
    """``turns`` without trailing human turns (SFT data and pairs end on the agent's last action)."""
    while turns and turns[-1]["from"] != "gpt":
        turns = turns[:-1]
    return turns


# ------------------------------------------------------------------------------ record files
def record_label(record, index: int, fields: str) -> str:
    """'record 3 (id 'x')' for messages; raises if ``record`` is not an object with an id."""
    if not isinstance(record, dict):
        raise RecordError(f"record {index}: expected an object with {fields}, got {type(record).__name__}")
    if "id" not in record:
        raise RecordError(f"record {index}: missing field 'id'")
    return f"record {index} (id {record['id']!r})"


def validate_sft_record(record, index: int) -> None:
    where = record_label(record, index, "'id' and 'conversations'")
    turns = record.get("conversations")
    check_turns(turns, where, "conversations")
    if len(turns) < MIN_SFT_TURNS:
        raise RecordError(f"{where}: {len(turns)} turns; need the instruction, the acknowledgement, "
                          "the task and at least one agent turn")


def validate_pair(record, index: int) -> None:
    where = record_label(record, index, "'id', 'prompt', 'chosen' and 'rejected'")
    check_turns(record.get("prompt"), where, "prompt", first="human")
    if record["prompt"][-1]["from"] != "human":
        raise RecordError(f"{where}: the prompt must end on a human turn (the task)")
    for side in ("chosen", "rejected"):
        check_turns(record.get(side), where, side, first="gpt")
        if record[side][-1]["from"] != "gpt":
            raise RecordError(f"{where}: {side} must end on an agent (gpt) turn")


def load_records(path: str, validate: Callable[[Any, int], None]) -> List[Dict]:
    """The JSON list in ``path``, each record checked by ``validate(record, index)``, ids unique."""
    records = read_json(path)
    if not isinstance(records, list):
        raise RecordError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    seen = set()
    for index, record in enumerate(records):
        try:
            validate(record, index)
        except RecordError as error:
            raise RecordError(f"{path}: {error}") from None
        if record["id"] in seen:
            raise RecordError(f"{path}: record {index}: duplicate id {record['id']!r}")
        seen.add(record["id"])
    return records


def write_records(path: str, records: Sequence[Dict], validate: Callable[[Any, int], None]) -> None:
    """Validate, then write atomically (a partial file never replaces a good one)."""
    for index, record in enumerate(records):
        validate(record, index)
    write_json_atomic(path, list(records), newline=True)


def load_sft_data(path: str) -> List[Dict]:
    """Every SFT record of ``path``, validated; raises ``RecordError`` on the first bad one."""
    return load_records(path, validate_sft_record)


def write_sft_data(path: str, records: Sequence[Dict]) -> None:
    write_records(path, records, validate_sft_record)


def load_preference_data(path: str) -> List[Dict]:
    """Every pair of ``path``, validated; raises ``RecordError`` on the first bad one."""
    return load_records(path, validate_pair)


def write_preference_data(path: str, pairs: Sequence[Dict]) -> None:
    write_records(path, pairs, validate_pair)


# ------------------------------------------------------------------------------ episodes
def make_episode(task_id: str, task: Dict, *, steps: int, reward: float, finished: bool, success: bool,
                 terminate_reason: Optional[str], error: Optional[str], task_turn: Optional[int],
                 timing: Optional[Dict[str, float]], conversations: List[Dict],
                 reward_by_step: Optional[List[float]] = None) -> Dict:
    """An episode record; ``success`` never holds for an episode whose agent failed.
    ``reward_by_step``: the task's reward after each step (how soon a policy gets there)."""
    meta = {"id": task_id, "task": task, "steps": steps, "reward": reward, "finished": finished,
            "success": success and error is None, "terminate_reason": terminate_reason, "error": error,
            "task_turn": task_turn, "timing": {k: round(v, 4) for k, v in (timing or {}).items()},
            "reward_by_step": list(reward_by_step or [])}
    return {"meta": meta, "conversations": conversations}


def episode_problem(record) -> Optional[str]:
    """Why an episode cannot be paired or trained on, or None if it can."""
    if not isinstance(record, dict):
        return "not a JSON object (or not valid JSON)"
    meta, conversations = record.get("meta"), record.get("conversations")
    if not (isinstance(meta, dict) and "id" in meta and isinstance(conversations, list)):
        return "needs 'meta' with an 'id', and 'conversations'"
    reward, task_turn = meta.get("reward"), meta.get("task_turn")
    if not (isinstance(reward, (int, float)) and math.isfinite(reward)):
        return f"reward {reward!r} is not a number"
    if not (isinstance(task_turn, int) and 0 <= task_turn < len(conversations)):
        return f"task_turn {task_turn!r} is not a turn of the conversation"
    try:
        check_turns(conversations[task_turn:], "episode", "conversations from the task", first="human")
    except RecordError as error:
        return str(error)
    return None


def episode_opening(record: dict) -> List[Dict]:
    """An episode's instruction, acknowledgement and task turns, without its in-context examples:
    the opening of an SFT record or a pair built from the episode alone (no expert record)."""
    turns = record["conversations"]
    return [turns[0], turns[1], turns[record["meta"]["task_turn"]]]


def is_finished(record: Optional[dict]) -> bool:
    """A saved episode that needs no replay: it exists and its agent did not fail."""
    return isinstance(record, dict) and isinstance(record.get("meta"), dict) and record["meta"].get("error") is None
