"""The environment's own expert as an agent, so expert episodes run through the same loop
(and are saved in the same layout) as the policy's."""

from __future__ import annotations

from typing import List

from eval_agent.agents.base import Agent, EndEpisode, Message, Reply


class ExpertExhausted(EndEpisode):
    reason = "expert_exhausted"


class ExpertAgent(Agent):
    """Answers with ``env.expert_reply()``; the env must be created with ``expert: true``."""

    def __init__(self, config: dict = None, model_name: str = "expert"):
        super().__init__(config or {}, model_name)
        self.env = None

    def bind(self, env) -> "ExpertAgent":
        bound = type(self)(self.config, self.model_name)
        bound.env = env
        return bound

    def next_reply(self):
        """The env's reply for this agent; None when it has no further action."""
        return self.env.expert_reply()

    def exhausted(self) -> EndEpisode:
        return ExpertExhausted(f"the expert has no further action after {self.env.state.steps} steps")

    def _attempt(self, messages: List[Message], attempt: int) -> Reply:
        if self.env is None:
            raise RuntimeError(f"{type(self).__name__}.bind(env) must be called before generate")
        reply = self.next_reply()
        if reply is None:
            raise self.exhausted()
        return Reply(reply)
