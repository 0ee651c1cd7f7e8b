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
        bound = ExpertAgent(self.config, self.model_name)
        bound.env = env
        return bound

    def _attempt(self, messages: List[Message], attempt: int) -> Reply:
        if self.env is None:
            raise RuntimeError("ExpertAgent.bind(env) must be called before generate")
        reply = self.env.expert_reply()
        if reply is None:
            raise ExpertExhausted(f"the expert has no further action after {self.env.state.steps} steps")
        return Reply(reply)
