"""Environment classes, registered by environment name."""

from eval_agent.envs.alfworld_env import AlfWorldEnv
from eval_agent.envs.base import FORMAT_ERROR, BaseEnv, EpisodeState, parse_action
from eval_agent.envs.sciworld_env import SciWorldEnv
from eval_agent.envs.webshop_env import WebShopEnv

ENVS = {"sciworld": SciWorldEnv, "alfworld": AlfWorldEnv, "webshop": WebShopEnv}

__all__ = ["ENVS", "AlfWorldEnv", "BaseEnv", "EpisodeState", "FORMAT_ERROR", "SciWorldEnv", "WebShopEnv", "parse_action"]
