"""Environment classes: one module per environment, each declaring its plug-in ``SPEC``
(``eval_agent.registry`` collects them). The built-in classes are re-exported for convenience."""

from eval_agent.envs.alfworld_env import AlfWorldEnv
from eval_agent.envs.base import FORMAT_ERROR, BaseEnv, EpisodeState, parse_action
from eval_agent.envs.sciworld_env import SciWorldEnv
from eval_agent.envs.webshop_env import WebShopEnv

__all__ = ["AlfWorldEnv", "BaseEnv", "EpisodeState", "FORMAT_ERROR", "SciWorldEnv", "WebShopEnv", "parse_action"]
