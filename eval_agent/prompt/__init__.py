"""Prompts: an instruction and in-context examples, turned into the opening of a conversation.

The conversation layout (the original ETO "conversation" format) is:
    user: instruction / assistant: "OK" / [example: user task, assistant, user, ..., assistant]*
    / user: the task / then alternating assistant replies and user observations.
SFT data uses the same layout without the examples.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Dict, List, Tuple

PROMPT_DIR = os.path.dirname(os.path.abspath(__file__))
ACKNOWLEDGEMENT = "OK"
Message = Dict[str, str]


@lru_cache(maxsize=None)
def load_instruction(env_name: str) -> str:
    with open(os.path.join(PROMPT_DIR, "instructions", f"{env_name}.txt"), encoding="utf-8") as f:
        return f.read().strip()


@lru_cache(maxsize=None)
def load_examples(env_name: str) -> Tuple[Tuple[Message, ...], ...]:
    with open(os.path.join(PROMPT_DIR, "icl_examples", f"{env_name}.json"), encoding="utf-8") as f:
        return tuple(tuple(example["messages"]) for example in json.load(f))


def build_messages(env_name: str, task_text: str, num_examples: int = 1) -> Tuple[List[Message], int]:
    """The opening conversation for a task, and the index of the task's own turn."""
    examples = load_examples(env_name) if num_examples else ()
    if num_examples > len(examples):
        raise ValueError(f"{env_name} has {len(examples)} in-context examples, {num_examples} requested")
    messages: List[Message] = [
        {"role": "user", "content": load_instruction(env_name)},
        {"role": "assistant", "content": ACKNOWLEDGEMENT},
    ]
    for example in examples[:num_examples]:
        messages.extend(dict(m) for m in example)
    task_turn = len(messages)
    messages.append({"role": "user", "content": task_text})
    return messages, task_turn
