"""A scripted expert shopper that knows the goal.

It searches with the instruction's own words (without the opening "i need" and the price
clause), opens the first result that can satisfy the goal as fully as any result can (the
product the instruction was written for, or one ranked above it that is just as good; paging
with "Next >" when it is further down), selects the option value closest to each requested
option, and buys. Each action comes with a one-sentence
rationale written from rules, like the other environments' experts.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from rapidfuzz import fuzz

from eto_webshop.catalog import Goal, Product
from eto_webshop.engine import RESULTS_PER_PAGE, WebShop
from eto_webshop.reward import has_attribute, normalize_color, score
from eto_webshop.search import TOP_K

_OPENING = re.compile(r"^(?:i need|i am looking for|i'm looking for|looking for|find me|i want to buy|i want|"
                      r"i would like|i'd like|i'm searching for|please get me|get me|buy me|search for)\s+"
                      r"(?:(?:a|an|some|the)\s+)?")
_PRICE = re.compile(r",?\s*and price lower than [\d.]+ dollars\s*$")


def search_query(instruction: str) -> str:
    """What the expert types into the search box for an instruction."""
    text = _PRICE.sub("", instruction.lower().strip())
    return _OPENING.sub("", text).strip(" ,.") or text


def best_options(product: Product, goal: Goal) -> Dict[str, str]:
    """For each requested option, the product's closest value (by the reward's fuzzy match)."""
    chosen: Dict[str, str] = {}
    for wanted in goal.options:
        best, best_score = None, 0.0
        for name, values in product.options.items():
            if name in chosen:
                continue
            for value in values:
                s = fuzz.token_set_ratio(normalize_color(value), normalize_color(wanted))
                if s > best_score:
                    best, best_score = (name, value), s
        if best is not None:
            chosen[best[0]] = best[1]
    return chosen


def achievable(product: Product, goal: Goal) -> float:
    return score(product, goal, best_options(product, goal).values()).reward


class ExpertShopper:
    """Call ``next_action`` after every step; it reads the shop's current page."""

    def __init__(self, shop: WebShop):
        self.shop = shop
        self.target: Optional[str] = None
        self.searches = 0

    def next_action(self) -> Optional[Tuple[str, str]]:
        """(thought, action) for the current page, or None once the purchase is made."""
        s = self.shop.session
        goal = s.goal
        if s.page == "done":
            return None
        if s.page == "search":
            self.searches += 1
            if self.searches == 1:
                query = search_query(goal.instruction)
                return f"I am shopping for {query}. I will search for it.", f"search[{query}]"
            if self.searches == 2:
                return f"I will search for the kind of product alone: {goal.query}.", f"search[{goal.query}]"
            return None  # two searches found nothing: give up
        if s.page == "results":
            return self._on_results(goal)
        if s.page != "item":
            return "I have read enough here; I will go back to the product page.", "click[< Prev]"
        product = self.shop.product
        for name, value in best_options(product, goal).items():
            if s.options.get(name) != value:
                return (f"The instruction asks for {value}, so I will select it as the {name}.", f"click[{value}]")
        return self._buy_thought(product, goal), "click[Buy Now]"

    def _on_results(self, goal: Goal) -> Tuple[str, str]:
        s = self.shop.session
        if not s.results:
            return ("The search found nothing. I will go back and search with fewer words.", "click[Back to Search]")
        if self.target not in s.results:
            # The first result that can satisfy the goal as fully as any: the instruction's own
            # product or one ranked above it that is just as good.
            best = -1.0
            for asin in s.results:
                reward = achievable(self.shop.catalog.products[asin], goal)
                if reward > best:
                    self.target, best = asin, reward
                if best >= 1.0:
                    break
        page_of_target = s.results.index(self.target) // RESULTS_PER_PAGE + 1
        if page_of_target > s.page_num:
            return ("None of the products on this page fits the request well. I will look at the next page.",
                    "click[Next >]")
        if page_of_target < s.page_num:
            return "A better match was on the previous page. I will go back to it.", "click[< Prev]"
        product = self.shop.catalog.products[self.target]
        return self._pick_thought(product, goal), f"click[{product.asin}]"

    @staticmethod
    def _pick_thought(product: Product, goal: Goal) -> str:
        matched = [a for a in goal.attributes if has_attribute(product, a)]
        qualities = f": it is {' and '.join(matched)}," if matched else ","
        budget = (f"under the {goal.price_upper:.0f} dollar limit" if product.price <= goal.price_upper
                  else f"over the {goal.price_upper:.0f} dollar limit, but it is the closest match")
        return (f"{product.asin} looks like the {goal.query} I need{qualities} and it costs {product.price_tag}, "
                f"{budget}. I will open it.")

    @staticmethod
    def _buy_thought(product: Product, goal: Goal) -> str:
        if goal.options:
            return "The options the instruction asks for are selected. I will buy it now."
        return "This product matches the instruction. I will buy it now."


def max_expert_steps(goal: Goal) -> int:
    """The most actions the expert takes: two searches (and Back to Search), paging through every
    result page, opening a product, one click per option, Buy Now."""
    return 3 + TOP_K // RESULTS_PER_PAGE + len(goal.options) + 1


def play(shop: WebShop, goal_index: int) -> Tuple[float, List[Tuple[str, str, str]]]:
    """Let the expert shop for one goal: (reward, [(thought, action, observation), ...])."""
    shop.reset(goal_index)
    expert, steps, reward = ExpertShopper(shop), [], 0.0
    for _ in range(max_expert_steps(shop.session.goal)):
        move = expert.next_action()
        if move is None:
            break
        result = shop.step(move[1])
        steps.append((move[0], move[1], result.observation))
        if result.done:
            reward = result.reward
            break
    return reward, steps
