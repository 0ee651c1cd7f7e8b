"""Two reference shoppers that do not learn, to measure how hard a catalog is.

- ``rule``: the WebShop paper's rule baseline: search the instruction as written, open the
  first result, buy it (no option is selected). WebShop reports 45.6 score / 9.6% success for it
  on the real catalog.
- ``random``: searches the instruction as written, then clicks a button of the current page
  chosen at random until it buys or runs out of steps (reward 0 then).

Both play through the engine, as an agent would; ``benchmarks/webshop_difficulty.py`` compares
them with the scripted expert.
"""

from __future__ import annotations

import random
from typing import Optional

from eto_webshop.engine import BUY, WebShop

POLICY_MAX_STEPS = 10      # an agent's step limit on WebShop (configs/task/webshop.json)


def instruction_query(shop: WebShop) -> str:
    return shop.session.goal.instruction.lower()


def rule_shopper(shop: WebShop, goal_index: int) -> float:
    """Search the instruction, open the first hit, buy: the episode's reward (0 if nothing is found)."""
    shop.reset(goal_index)
    shop.step(f"search[{instruction_query(shop)}]")
    if not shop.session.results:
        return 0.0
    shop.step(f"click[{shop.session.results[0]}]")
    return shop.step(f"click[{BUY}]").reward


def random_shopper(shop: WebShop, goal_index: int, rng: random.Random,
                   max_steps: int = POLICY_MAX_STEPS) -> float:
    """Search the instruction, then click at random: the reward of what it buys, 0 if it buys nothing."""
    shop.reset(goal_index)
    result: Optional[object] = shop.step(f"search[{instruction_query(shop)}]")
    for _ in range(max_steps - 1):
        buttons = sorted(shop.clickables())
        if not buttons:
            return 0.0
        result = shop.step(f"click[{rng.choice(buttons)}]")
        if result.done:
            return result.reward
    return 0.0
