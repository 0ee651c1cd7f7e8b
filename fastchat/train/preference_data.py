"""The trajectory preference format (the original ETO README's DPO data) and its validator.

    [{"id": "...",
      "prompt":   [{"from": "human", "value": <instruction>}, {"from": "gpt", "value": "OK"},
                   {"from": "human", "value": <task>}],
      "chosen":   [{"from": "gpt", "value": "Thought: ...\\nAction: ..."}, {"from": "human", ...}, ...],
      "rejected": [{"from": "gpt", ...}, ...]}]

The prompt alternates from a human turn and ends on one; chosen and rejected continue it, from an
agent turn to an agent turn. Extra fields (``chosen_reward``, ...) are allowed.
``construct_preference.py`` writes this format and ``train_dpo.py`` reads it.
"""

from __future__ import annotations

from typing import Dict, List

from fastchat.train.sft_data import SFTDataError, check_turns, load_records, record_label


def validate_pair(record, index: int) -> None:
    where = record_label(record, index, "'id', 'prompt', 'chosen' and 'rejected'")
    check_turns(record.get("prompt"), where, "prompt", first="human")
    if record["prompt"][-1]["from"] != "human":
        raise SFTDataError(f"{where}: the prompt must end on a human turn (the task)")
    for side in ("chosen", "rejected"):
        check_turns(record.get(side), where, side, first="gpt")
        if record[side][-1]["from"] != "gpt":
            raise SFTDataError(f"{where}: {side} must end on an agent (gpt) turn")


def load_preference_data(path: str) -> List[Dict]:
    """Every pair of ``path``, validated; raises ``SFTDataError`` on the first bad one."""
    return load_records(path, validate_pair)
