"""Agent classes, registered by the ``agent_class`` name used in configs/model/*.json."""

from eval_agent.agents.base import Agent, AgentError, ContextLimitExceeded, EndEpisode, Reply
from eval_agent.agents.expert_agent import ExpertAgent
from eval_agent.agents.fastchat_agent import FastChatAgent
from eval_agent.agents.openai_agent import OpenAIAgent

AGENTS = {"fastchat": FastChatAgent, "openai": OpenAIAgent, "expert": ExpertAgent}

__all__ = ["AGENTS", "Agent", "AgentError", "ContextLimitExceeded", "EndEpisode", "ExpertAgent", "FastChatAgent", "OpenAIAgent", "Reply"]
