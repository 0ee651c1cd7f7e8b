"""Environment classes, registered by environment name."""

from eval_agent.envs.alfworld_env import AlfWorldEnv
from eval_agent.envs.base import FORMAT_ERROR, BaseEnv, EpisodeState, parse_action
from eval_agent.envs.sciworld_env import SciWorldEnv

ENVS = {"sciworld": SciWorldEnv, "alfworld": AlfWorldEnv}

__all__ = ["ENVS", "AlfWorldEnv", "BaseEnv", "EpisodeState", "FORMAT_ERROR", "SciWorldEnv", "parse_action"]
