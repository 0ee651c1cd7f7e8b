"""Agent classes, registered by the ``agent_class`` name used in configs/model/*.json."""

from eval_agent.agents.adversarial_agent import AdversarialAgent
from eval_agent.agents.baseline_agent import BaselineAgent
from eval_agent.agents.base import Agent, AgentError, ContextLimitExceeded, EndEpisode, Reply
from eval_agent.agents.expert_agent import ExpertAgent
from eval_agent.agents.fastchat_agent import FastChatAgent
from eval_agent.agents.openai_agent import OpenAIAgent

AGENTS = {"fastchat": FastChatAgent, "openai": OpenAIAgent, "expert": ExpertAgent, "adversarial": AdversarialAgent,
          "baseline": BaselineAgent}

__all__ = ["AGENTS", "AdversarialAgent", "Agent", "AgentError", "BaselineAgent", "ContextLimitExceeded", "EndEpisode", "ExpertAgent", "FastChatAgent", "OpenAIAgent", "Reply"]
