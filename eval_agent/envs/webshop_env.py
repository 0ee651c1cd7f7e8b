"""WebShop through our engine (``envs/webshop``, package ``eto_webshop``).

The first turn is the shop's search page (``WebShop [SEP] Instruction: [SEP] ... [SEP] Search``)
and every observation is ``Observation:\\n<page>``, as in the original ETO. Actions are
``search[...]`` and ``click[...]``; one the page does not offer leaves it as it was and the
observation says why. The episode ends on Buy Now with WebShop's reward (0 to 1), or after
``max_steps`` replies (10 in configs/task/webshop.json, the original's) with reward 0.
Success means a reward of 1.

The catalog and its search index are loaded once per process and shared by all env instances.
"""

from __future__ import annotations

import os
import random
import threading
from typing import Dict, Optional, Tuple

from eval_agent.envs.base import BaseEnv
from eval_agent.experts.webshop import ShopperExpert
from eval_agent.plugin import EnvironmentSpec
from eval_agent.tasks.webshop import WebShopTask, data_dir_of, generate_splits

_shared: Dict[Tuple[str, str], tuple] = {}
_shared_lock = threading.Lock()


def load_shop_data(data_dir: str, backend: str):
    """(catalog, search index) for a data folder, built once per process."""
    from eto_webshop import Catalog, make_search

    key = (os.path.abspath(data_dir), backend)
    with _shared_lock:
        if key not in _shared:
            catalog = Catalog.load(data_dir)
            index_dir = os.path.join(data_dir, "search_index")  # saved indexes, rebuilt when the catalog changes
            _shared[key] = (catalog, make_search(list(catalog.products.values()), backend, index_dir))
        return _shared[key]


class WebShopEnv(BaseEnv):
    BASELINES = ("rule", "random")  # eto_webshop.baselines: WebShop's rule baseline, a random clicker

    def __init__(self, config: dict):
        super().__init__(config)
        from eto_webshop import WebShop

        catalog, search = load_shop_data(data_dir_of(config), config.get("search_backend", "auto"))
        self.shop = WebShop(catalog, search)
        self.expert: Optional[ShopperExpert] = None
        self.baseline_rng: Optional[random.Random] = None

    def _reset(self, task: WebShopTask) -> str:
        goals = self.shop.catalog.goals
        if task.goal_index >= len(goals) or goals[task.goal_index].asin != task.asin:
            raise ValueError(f"WebShop task {task.task_id} does not match the catalog's goals: the split files were "
                             "made for another catalog; run `python scripts/make_splits.py webshop`")
        self.max_steps = int(self.config["max_steps"])
        opening = self.shop.reset(task.goal_index)
        self.expert = ShopperExpert(self.shop) if self.config.get("expert") else None
        # The random clicker's clicks depend on the goal and the seed alone, not on the order of play.
        self.baseline_rng = random.Random(f"{self.config.get('baseline_seed', 0)}:{task.goal_index}")
        if self.expert:  # the limit is for the policy; the expert may page further before it buys
            self.max_steps = max(self.max_steps, self.expert.max_steps())
        return opening

    def _act(self, action: str) -> str:
        result = self.shop.step(action)
        if result.error:
            return f"Observation:\nInvalid action: {result.error}. The page is unchanged:\n{result.observation}"
        if result.done:
            self.state.reward = result.reward
            self.state.finish("success" if result.reward >= 1.0 else "purchased", success=result.reward >= 1.0)
        return f"Observation:\n{result.observation}"

    def expert_reply(self) -> Optional[str]:
        """The shopper's next action (``eval_agent.experts.webshop``)."""
        return self.expert.reply() if self.expert else None

    def baseline_reply(self) -> Optional[str]:
        from eto_webshop.baselines import random_action, rule_action

        name = self.config["baseline"]
        if name == "rule":
            action, why = rule_action(self.shop), "The rule: search the instruction, open the first result, buy it."
        else:
            action, why = random_action(self.shop, self.baseline_rng, self.state.steps), "A random click."
        return None if action is None else f"Thought: {why}\nAction: {action}"


SPEC = EnvironmentSpec("webshop", WebShopTask, WebShopEnv, generate_splits, split_options=("data_dir",))
