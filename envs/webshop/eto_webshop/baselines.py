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


# Step by step, so that the same shoppers also play through eval_agent (the ``rule`` and
# ``random`` agents): each returns the next action in the shop's current state, None to give up.
def rule_action(shop: WebShop) -> Optional[str]:
    """Search the instruction, open the first hit, buy (None when the search finds nothing)."""
    page = shop.session.page
    if page == "search":
        return f"search[{instruction_query(shop)}]"
    if page == "results":
        return f"click[{shop.session.results[0]}]" if shop.session.results else None
    return f"click[{BUY}]"


def random_action(shop: WebShop, rng: random.Random, step: int) -> Optional[str]:
    """Search the instruction at step 0, then click one of the page's buttons at random (None on
    a page without buttons: back on the search page, it gives up)."""
    if step == 0:
        return f"search[{instruction_query(shop)}]"
    buttons = sorted(shop.clickables())
    return f"click[{rng.choice(buttons)}]" if buttons else None


def rule_shopper(shop: WebShop, goal_index: int) -> float:
    """The rule baseline's reward on one goal (0 if nothing is found)."""
    shop.reset(goal_index)
    for _ in range(3):
        action = rule_action(shop)
        if action is None:
            return 0.0
        result = shop.step(action)
    return result.reward


def random_shopper(shop: WebShop, goal_index: int, rng: random.Random,
                   max_steps: int = POLICY_MAX_STEPS) -> float:
    """The random clicker's reward on one goal: what it buys, 0 if it buys nothing."""
    shop.reset(goal_index)
    for step in range(max_steps):
        action = random_action(shop, rng, step)
        if action is None:
            return 0.0
        result = shop.step(action)
        if result.done:
            return result.reward
    return 0.0
