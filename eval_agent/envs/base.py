"""The environment side of an episode: parse the agent's reply, act, report the state."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Optional, Tuple

# How an action is read from a reply (task config "action_parsing"):
# "first": everything after the first "Action:", to the end of the reply (the original ETO's rule;
#          its stop strings end a reply before a hallucinated "Observation:");
# "last_line": the first line after the last "Action:" (tolerates text after the action).
ACTION_PATTERNS = {
    "first": re.compile(r"Action:[ \t]?(.*)", re.DOTALL),
    "last_line": re.compile(r"Action:[ \t]*([^\n]*)"),
}

FORMAT_ERROR = (
    "Observation: Invalid format. End your reply with a line of the form 'Action: <action>', "
    "for example:\nThought: I should look around first.\nAction: look around"
)


class EnvCrashed(RuntimeError):
    """The environment's engine died under the episode (ScienceWorld's JVM killed, say): not an
    outcome of the agent's actions. The runner replays the episode once in a fresh environment."""


@dataclass
class EpisodeState:
    steps: int = 0
    reward: float = 0.0
    finished: bool = False
    success: bool = False
    terminate_reason: Optional[str] = None
    error: Optional[str] = None

    def finish(self, reason: str, success: bool = False) -> None:
        self.finished, self.success, self.terminate_reason = True, success, reason


def parse_action(llm_output: str, mode: str = "first") -> Optional[str]:
    """The action in ``Thought: ...\\nAction: ...`` output, or None if there is none."""
    if mode not in ACTION_PATTERNS:
        raise ValueError(f"action_parsing must be one of {', '.join(ACTION_PATTERNS)}, got {mode!r}")
    matches = ACTION_PATTERNS[mode].findall((llm_output or "").strip())
    action = (matches[0] if mode == "first" else matches[-1]).strip() if matches else ""
    return action or None


class BaseEnv(ABC):
    """One environment instance; ``reset`` loads a task, ``step`` consumes agent replies.

    Every reply counts as a step, including malformed ones (which earn ``FORMAT_ERROR``).
    Subclasses implement ``_reset`` (load the task, return its opening text) and ``_act``
    (run a parsed action, update ``self.state``, return the observation text).
    """

    def __init__(self, config: dict):
        self.config = config
        # Set by the runner before a reset: False when this instance will most likely play no
        # episode after this one, so that an env that prepares the next episode ahead can skip it.
        self.plays_again = True
        self.state = EpisodeState()
        self.max_steps = 0
        self.action_parsing = config.get("action_parsing", "first")
        parse_action("", self.action_parsing)  # an unknown mode fails here, before any episode

    def reset(self, task) -> str:
        self.state = EpisodeState()
        return self._reset(task)

    def step(self, llm_output: str) -> Tuple[str, EpisodeState]:
        action = parse_action(llm_output, self.action_parsing)
        observation = FORMAT_ERROR if action is None else self._act(action)
        self.state.steps += 1
        if not self.state.finished and self.state.steps >= self.max_steps:
            self.state.finish("max_steps")
        return observation, self.state

    @abstractmethod
    def _reset(self, task) -> str:
        """Load ``task``; return the text of its opening turn."""

    @abstractmethod
    def _act(self, action: str) -> str:
        """Run one parsed action; update ``self.state``; return the observation text."""

    def expert_reply(self) -> Optional[str]:
        """The environment's own expert: its next reply (``Thought: ...\nAction: ...``) in the
        current state, or None when it has no further action. Envs with an expert override it
        and support it when created with ``config["expert"] = True`` (expert plans can be costly
        to load); commands check ``has_expert()`` first, so this default is never reached."""
        raise NotImplementedError(f"{type(self).__name__} has no expert")

    # Shoppers, players and the like that do not learn, by name (config "baseline"): reference
    # rows beside the expert's. An env with baselines plays them through ``baseline_reply``.
    BASELINES: Tuple[str, ...] = ()

    def baseline_reply(self) -> Optional[str]:
        """The next reply of the baseline named in ``config["baseline"]``, None when it gives up."""
        raise NotImplementedError(f"{type(self).__name__} has no baselines")

    @classmethod
    def has_expert(cls) -> bool:
        return cls.expert_reply is not BaseEnv.expert_reply

    @classmethod
    def same_observation(cls, replayed: str, recorded: str) -> bool:
        """Whether a replay's observation shows what a recorded one showed (step-level pairs check
        that replaying an expert prefix reached the expert's states). Exact, unless an env's
        observations vary in form for the same state."""
        return replayed.strip() == recorded.strip()

    def close(self) -> None:
        pass
