"""Agents: a served policy that answers a conversation with its next message."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Dict, List, TypeVar

import requests
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

logger = logging.getLogger(__name__)
Message = Dict[str, str]
R = TypeVar("R")


class AgentError(RuntimeError):
    """The policy could not answer, even after retries (server gone, bad responses)."""


class RetryableError(RuntimeError):
    """A failure worth another try (a worker error, an empty pool of workers)."""


class SetupError(ValueError):
    """The policy cannot be reached at all before a run starts (no server, no such model): a setup
    mistake to report in one line, not a transient failure to retry episode after episode."""


class EndEpisode(RuntimeError):
    """The agent cannot go on, and that is an outcome, not a failure: the episode ends with
    ``reason`` as its terminate reason (and is not replayed on the next run)."""

    reason = "agent_stopped"


class ContextLimitExceeded(EndEpisode):
    """The conversation no longer fits in the model's context window."""

    reason = "exceeding maximum input length"  # the original ETO's wording


@dataclass
class Reply:
    text: str
    timing: Dict[str, float] = field(default_factory=dict)  # seconds, by phase


class Agent(ABC):
    """Subclasses implement ``_attempt``; ``generate`` adds retries with exponential backoff."""

    def __init__(self, config: dict, model_name: str):
        self.config = config
        self.model_name = model_name
        self.max_new_tokens = int(config.get("max_new_tokens", 512))
        # Strings that end a reply before the model writes the environment's part (the original's:
        # "\nObservation:", "\nTask:", "\n---"); the model's own end-of-turn stop applies as well.
        self.stop: List[str] = list(config.get("stop") or [])
        self.temperature = float(config.get("temperature", 0.0))
        self.top_p = float(config.get("top_p", 1.0))
        self.timeout = float(config.get("timeout", 300))
        # Waits of retry_backoff s, doubling up to retry_max_wait: the defaults ride out a worker
        # that restarts (about a minute) before an episode is given up as an error.
        self.max_retries = int(config.get("max_retries", 6))
        self.backoff = float(config.get("retry_backoff", 1.0))
        self.max_wait = float(config.get("retry_max_wait", 30.0))

    def bind(self, env) -> "Agent":
        """The agent that plays an episode in ``env``. Policies only see the conversation, so
        they return themselves; an agent that reads the env (the expert) returns a bound copy."""
        return self

    def check(self) -> None:
        """Raise ``SetupError`` if the policy cannot answer at all (checked once, before a run)."""

    def generate(self, messages: List[Message]) -> Reply:
        return self._with_retries(lambda attempt: self._attempt(messages, attempt))

    @abstractmethod
    def _attempt(self, messages: List[Message], attempt: int) -> Reply:
        """One try at answering; raise ``RetryableError`` (or a requests error) to be retried."""

    def _with_retries(self, call: Callable[[int], R]) -> R:
        """``call(attempt)`` until it answers; after ``max_retries`` failed retries (waits of
        ``retry_backoff`` s, doubling up to ``retry_max_wait``), ``AgentError`` with the last failure."""
        retrying = Retrying(
            retry=retry_if_exception_type((requests.RequestException, RetryableError, ValueError)),
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait_exponential(multiplier=self.backoff, exp_base=2, min=0, max=self.max_wait),
            before_sleep=lambda state: logger.warning(
                "agent call failed (%s); retry %d/%d in %.0fs", state.outcome.exception(), state.attempt_number,
                self.max_retries, state.next_action.sleep),
            reraise=False,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return call(attempt.retry_state.attempt_number - 1)
        except RetryError as failed:
            error = failed.last_attempt.exception()
            raise AgentError(f"{type(error).__name__}: {str(error)[:300]}") from None
        raise AssertionError("unreachable")
