"""An environment's baselines as agents (WebShop's rule baseline and random clicker, say), so that
they play through the same loop as the policy and the expert and are saved, compared and tested
the same way: reference rows that need no model.

    python -m eval_agent.main --agent_config rule --model_name rule --exp_config webshop --split test
"""

from __future__ import annotations

from eval_agent.agents.base import EndEpisode
from eval_agent.agents.expert_agent import ExpertAgent


class BaselineGaveUp(EndEpisode):
    reason = "baseline_gave_up"


class BaselineAgent(ExpertAgent):
    """Answers with ``env.baseline_reply()``, as the expert agent with ``env.expert_reply()``; the
    env must be created with ``baseline: <name>`` (``eval_agent.config.load_task_config``), which
    the agent config's ``"baseline"`` names."""

    def __init__(self, config: dict = None, model_name: str = "baseline"):
        super().__init__(config, model_name)

    def next_reply(self):
        return self.env.baseline_reply()

    def exhausted(self) -> EndEpisode:
        return BaselineGaveUp(f"the {self.config['baseline']} baseline has no action after {self.env.state.steps} steps")
