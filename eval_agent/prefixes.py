"""Expert prefixes for step-level exploration (the paper's step-level contrast, its Appendix B).

For a task with an expert trajectory of T agent steps, a step t in 1..T is drawn; the episode
replays the expert's first t-1 replies in the environment and the agent plays on from step t.
Its reply at step t, against the expert's, becomes a step-level pair (construct_preference.py),
ranked by the final rewards of the two continuations.

The paper does not say how t is chosen. Here it is uniform over the expert's steps, drawn once per
task from a generator seeded by (seed, task id): the same seed gives the same steps on every
machine and rerun, and the seed is the setting (``--prefix_seed``; run_eto.sh's STEP_SEED).
"""

from __future__ import annotations

import random
from typing import Dict, List, Type

from eto.records import PROMPT_TURNS, load_sft_data
from eval_agent.tasks.base import Task


def expert_replies(record: dict) -> List[str]:
    """The agent turns of an SFT record, in order."""
    return [turn["value"] for turn in record["conversations"][PROMPT_TURNS:] if turn["from"] == "gpt"]


def expert_observations(record: dict) -> List[str]:
    """The environment's answer to each expert reply (the human turn after it)."""
    turns = record["conversations"][PROMPT_TURNS:]
    return [turns[i + 1]["value"] for i in range(0, len(turns) - 1, 2)]


def choose_step(task_id: str, steps: int, seed: int) -> int:
    """The step (1-based) at which the agent takes over from the expert."""
    return random.Random(f"{seed}:{task_id}").randint(1, steps)


def load_prefixes(path: str, task_cls: Type[Task], seed: int) -> Dict[str, List[str]]:
    """task id -> the expert replies to replay before the agent's turn, for every record of the
    SFT file ``path`` (raises ``RecordError`` on a bad record)."""
    prefixes = {}
    for record in load_sft_data(path):
        replies = expert_replies(record)
        task_id = task_cls.expert_key(record)
        prefixes[task_id] = replies[: choose_step(task_id, len(replies), seed) - 1]
    return prefixes
