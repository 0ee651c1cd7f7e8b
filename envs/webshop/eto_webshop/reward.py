"""The WebShop reward for buying a product with some options under a goal.

    r = r_type * (matched attributes + matched options + [price <= cap]) / (attributes + options + 1)

- attributes: a goal attribute matches if one of the product's attributes is a fuzzy match
  (token-set ratio above 85), or if it appears word for word in the title, the features or the
  description;
- options: a goal option matches if a chosen option is a fuzzy match (above 85), after both are
  reduced to a base colour name when they contain one ("navy blue" -> "blue");
- r_type: 1 when the product is the right kind of thing (the same search query, two shared levels
  of the category path, or titles sharing more than 20% of the goal title's words), 0.5 when not,
  0.1 when the titles share under 10% of the words, 0 when they share none.

WebShop compares the nouns of the two titles (spaCy part-of-speech tags); offline we have no
tagger model, so the title score compares content words: lower-case words of three or more
letters that are not stop words or units. Both scores are a share of the goal title's words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence

from rapidfuzz import fuzz

from eto_webshop.catalog import CATEGORY_SEPARATOR, Goal, Product

FUZZY_MATCH = 85
# Ordered: "light blue" and "navy blue" must be seen as "blue" before "blue" is tried on its own.
BASE_COLORS = ("black", "white", "grey", "gray", "silver", "gold", "beige", "cream", "brown", "tan", "red", "pink",
               "purple", "violet", "blue", "navy", "teal", "green", "olive", "yellow", "orange", "ivory", "clear")
STOP_WORDS = frozenset("""
a an and are as at be but by for from has have in into is it its of on or our the this that to was were with
your you set pack piece pieces count inch inches size ounce ounces oz fl lb pound pounds ft feet new
""".split())


def normalize_color(text: str) -> str:
    for color in BASE_COLORS:
        if color in text:
            return color
    return text


def title_words(title: str) -> List[str]:
    return [w for w in re.findall(r"[a-z]+", title.lower()) if len(w) > 2 and w not in STOP_WORDS]


def title_score(purchased_title: str, goal_title: str) -> float:
    wanted = title_words(goal_title)
    if not wanted:
        return 0.2  # nothing to compare: WebShop's neutral score
    have = set(title_words(purchased_title))
    return len(set(wanted) & have) / len(wanted)


def category_levels(path: str) -> set:
    return {level.strip() for level in path.split(CATEGORY_SEPARATOR) if level.strip()}


def type_reward(product: Product, goal: Goal) -> float:
    query_match = product.query == goal.query
    category_match = len(category_levels(product.product_category) & category_levels(goal.product_category)) >= 2
    score = title_score(product.title, goal.name)
    r_type = 1.0 if (query_match or category_match or score > 0.2) else 0.5
    if score < 0.1:
        r_type = 0.1
    if score == 0.0:
        r_type = 0.0
    return r_type


def has_attribute(product: Product, wanted: str) -> bool:
    if any(fuzz.token_set_ratio(have, wanted) > FUZZY_MATCH for have in product.attributes):
        return True
    return wanted in " ".join([product.title, " ".join(product.features), product.description]).lower()


def attribute_matches(product: Product, goal: Goal) -> int:
    return sum(has_attribute(product, wanted) for wanted in goal.attributes)


def option_matches(chosen: Iterable[str], wanted: Sequence[str]) -> int:
    chosen = [normalize_color(c) for c in chosen]
    return sum(1 for w in wanted if any(fuzz.token_set_ratio(c, normalize_color(w)) > FUZZY_MATCH for c in chosen))


@dataclass(frozen=True)
class RewardBreakdown:
    reward: float
    r_type: float
    attributes_matched: int
    options_matched: int
    price_ok: bool


def score(product: Product, goal: Goal, chosen_options: Iterable[str], price: Optional[float] = None) -> RewardBreakdown:
    """The reward for buying ``product`` with ``chosen_options`` (option values) under ``goal``."""
    price = product.price if price is None else price
    r_type = type_reward(product, goal)
    n_attr = attribute_matches(product, goal)
    n_opt = option_matches(list(chosen_options), goal.options)
    price_ok = price <= goal.price_upper
    total = (n_attr + n_opt + int(price_ok)) / (len(goal.attributes) + len(goal.options) + 1)
    return RewardBreakdown(total * r_type, r_type, n_attr, n_opt, price_ok)
