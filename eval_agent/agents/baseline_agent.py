"""An environment's baselines as agents (WebShop's rule baseline and random clicker, say), so that
they play through the same loop as the policy and the expert and are saved, compared and tested
the same way: reference rows that need no model.

    python -m eval_agent.main --agent_config rule --model_name rule --exp_config webshop --split test
"""

from __future__ import annotations

from typing import List

from eval_agent.agents.base import Agent, EndEpisode, Message, Reply


class BaselineGaveUp(EndEpisode):
    reason = "baseline_gave_up"


class BaselineAgent(Agent):
    """Answers with ``env.baseline_reply()``; the env must be created with ``baseline: <name>``
    (``eval_agent.config.load_task_config``), which the agent config's ``"baseline"`` names."""

    def __init__(self, config: dict = None, model_name: str = "baseline"):
        super().__init__(config or {}, model_name)
        self.max_retries = 0  # nothing to retry: no server
        self.env = None

    def bind(self, env) -> "BaselineAgent":
        bound = BaselineAgent(self.config, self.model_name)
        bound.env = env
        return bound

    def _attempt(self, messages: List[Message], attempt: int) -> Reply:
        if self.env is None:
            raise RuntimeError("BaselineAgent.bind(env) must be called before generate")
        reply = self.env.baseline_reply()
        if reply is None:
            raise BaselineGaveUp(f"the {self.config['baseline']} baseline has no action after {self.env.state.steps} steps")
        return Reply(reply)
