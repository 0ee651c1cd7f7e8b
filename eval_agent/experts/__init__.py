"""The environments' own experts, one module each, all of one shape (``Expert``): given what the
env knows at reset, each answers the current state with its next (thought, action), the thought
a one-sentence rationale written from rules.

- ScienceWorld (``sciworld.py``): the engine's gold action path, after a ``look around``;
- ALFWorld (``alfworld.py``): the game's shipped walkthrough (train games only);
- WebShop (``webshop.py``): the scripted shopper of our engine (``eto_webshop.expert``), which
  reads the page it is on.

An env class offers its expert through ``expert_reply`` (``eval_agent/envs/base.py``), which the
expert agent plays through the ordinary episode loop (``eval_agent.expert_trajectories``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import List, Optional, Tuple


class Expert(ABC):
    @abstractmethod
    def next_move(self) -> Optional[Tuple[str, str]]:
        """(thought, action) for the current state, or None when the expert has nothing left."""

    @abstractmethod
    def max_steps(self) -> int:
        """The most replies it may need; the env's step limit (for policies) is raised to it."""

    def reply(self) -> Optional[str]:
        move = self.next_move()
        return None if move is None else f"Thought: {move[0]}\nAction: {move[1]}"


class ScriptedExpert(Expert):
    """An expert that knows its whole action list up front; ``thought(actions, index)`` explains each."""

    def __init__(self, actions: List[str]):
        self.actions, self.position = list(actions), 0

    @abstractmethod
    def thought(self, index: int) -> str:
        """The rationale of ``self.actions[index]``."""

    def next_move(self) -> Optional[Tuple[str, str]]:
        if self.position >= len(self.actions):
            return None
        index, self.position = self.position, self.position + 1
        return self.thought(index), self.actions[index]

    def max_steps(self) -> int:
        return len(self.actions) + 1
