"""Prompts: an instruction and in-context examples, turned into the opening of a conversation.

The conversation layout (the original ETO "conversation" format) is:
    user: instruction / assistant: "OK" / [example: user task, assistant, user, ..., assistant]*
    / user: the task / then alternating assistant replies and user observations.
SFT data uses the same layout without the examples.

Two prompt sets (task config ``"prompts"``, or ``--prompts``):
- ``ours``: this project's instructions and examples (``instructions/``, ``icl_examples/``),
  written for it, always present;
- ``original``: the original ETO's files, which ``setup.sh`` fetches into ``original/`` when
  online (``scripts/fetch_original_prompts.py``; not committed);
- ``auto``: the original's when they are there, else ours.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Dict, List, Sequence, Tuple

from eto.io import read_json

PROMPT_DIR = os.path.dirname(os.path.abspath(__file__))
ORIGINAL_DIR = os.path.join(PROMPT_DIR, "original")
PROMPT_SETS = ("ours", "original", "auto")
ACKNOWLEDGEMENT = "OK"
Message = Dict[str, str]


def original_paths(env_name: str) -> Tuple[str, str]:
    """Where the original's instruction and examples for ``env_name`` are kept once fetched."""
    return (os.path.join(ORIGINAL_DIR, f"{env_name}_inst.txt"), os.path.join(ORIGINAL_DIR, f"{env_name}_icl.json"))


def resolve_prompts(env_name: str, prompts: str) -> str:
    """``ours`` or ``original`` for a requested prompt set."""
    if prompts not in PROMPT_SETS:
        raise ValueError(f"prompts must be one of {', '.join(PROMPT_SETS)}, got {prompts!r}")
    have_original = all(os.path.isfile(p) for p in original_paths(env_name))
    if prompts == "auto":
        return "original" if have_original else "ours"
    if prompts == "original" and not have_original:
        raise ValueError(f"the original ETO prompts for {env_name} are not in {ORIGINAL_DIR}: "
                         "run `python scripts/fetch_original_prompts.py` (needs the network) or use --prompts ours")
    return prompts


@lru_cache(maxsize=None)
def load_instruction(env_name: str, prompts: str = "ours") -> str:
    path = (original_paths(env_name)[0] if resolve_prompts(env_name, prompts) == "original"
            else os.path.join(PROMPT_DIR, "instructions", f"{env_name}.txt"))
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


@lru_cache(maxsize=None)
def load_examples(env_name: str, prompts: str = "ours") -> Tuple[Tuple[Message, ...], ...]:
    if resolve_prompts(env_name, prompts) == "original":
        return tuple(examples_from_turns(example) for example in read_json(original_paths(env_name)[1]))
    return tuple(tuple(example["messages"])
                 for example in read_json(os.path.join(PROMPT_DIR, "icl_examples", f"{env_name}.json")))


def examples_from_turns(turns: Sequence[dict]) -> Tuple[Message, ...]:
    """An example in the original's file layout (a list of turns with ``content``, the task first;
    their role keys are not reliable) -> user/assistant messages by position."""
    return tuple({"role": "user" if i % 2 == 0 else "assistant", "content": turn["content"]}
                 for i, turn in enumerate(turns))


def build_messages(env_name: str, task_text: str, num_examples: int = 1,
                   prompts: str = "ours") -> Tuple[List[Message], int]:
    """The opening conversation for a task, and the index of the task's own turn."""
    examples = load_examples(env_name, prompts) if num_examples else ()
    if num_examples > len(examples):
        raise ValueError(f"{env_name} has {len(examples)} in-context examples, {num_examples} requested")
    messages: List[Message] = [
        {"role": "user", "content": load_instruction(env_name, prompts)},
        {"role": "assistant", "content": ACKNOWLEDGEMENT},
    ]
    for example in examples[:num_examples]:
        messages.extend(dict(m) for m in example)
    task_turn = len(messages)
    messages.append({"role": "user", "content": task_text})
    return messages, task_turn
