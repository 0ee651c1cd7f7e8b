"""The shop: pages, buttons and the text a text-mode agent sees.

Pages, as in WebShop's text mode, rendered as their visible texts joined by " [SEP] ", with the
instruction on every page:

- search:  ``WebShop [SEP] Instruction: [SEP] <goal> [SEP] Search``
- results: ``Instruction: [SEP] <goal> [SEP] Back to Search [SEP] Page 1 (Total results: 50) [SEP]
  Next > [SEP] <ASIN> [SEP] <title> [SEP] <price> [SEP] ...`` (10 per page, the top 50 hits)
- item:    ``... [SEP] Back to Search [SEP] < Prev [SEP] <option name> [SEP] <value> ... [SEP]
  <title> [SEP] Price: <price> [SEP] Rating: <r> [SEP] Description [SEP] Features [SEP] Reviews
  [SEP] Buy Now``
- description / features / reviews: ``... [SEP] Back to Search [SEP] < Prev [SEP] <content>``
- done:    after Buy Now; the episode is over.

Actions: ``search[keywords]`` (from any page, as in WebShop) and ``click[button]``, where a
button is any clickable text of the current page, case-insensitive (``click[B09ABC1234]`` and
``click[buy now]`` both work). Clicking an option value selects it (one value per option name;
the page text does not mark it, as in WebShop). An action that is neither leaves the page as it
was; unlike WebShop, the engine also says why (``info["error"]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from eto_webshop.catalog import Catalog, Goal, Product
from eto_webshop.reward import RewardBreakdown, score

SEP = " [SEP] "
RESULTS_PER_PAGE = 10
BACK_TO_SEARCH, NEXT, PREV, BUY = "Back to Search", "Next >", "< Prev", "Buy Now"
SUB_PAGES = ("Description", "Features", "Reviews")
ACTION = re.compile(r"\s*(search|click)\s*\[(.*)\]\s*", re.IGNORECASE | re.DOTALL)


@dataclass
class Session:
    goal: Goal
    page: str = "search"                     # search, results, item, description, features, reviews, done
    results: List[str] = field(default_factory=list)
    page_num: int = 1
    asin: Optional[str] = None
    options: Dict[str, str] = field(default_factory=dict)   # option name -> chosen value
    outcome: Optional[RewardBreakdown] = None


@dataclass
class StepResult:
    observation: str
    reward: float
    done: bool
    error: Optional[str] = None              # why the action was not carried out, if it was not


class WebShop:
    """One shopper's session at a time over a shared catalog and search index."""

    def __init__(self, catalog: Catalog, search):
        self.catalog = catalog
        self.search_index = search
        self.session: Optional[Session] = None

    # ------------------------------------------------------------------ episode
    def reset(self, goal_index: int) -> str:
        if not 0 <= goal_index < len(self.catalog.goals):
            raise IndexError(f"goal {goal_index} does not exist (the catalog has {len(self.catalog.goals)} goals)")
        self.session = Session(goal=self.catalog.goals[goal_index])
        return self.observation()

    def step(self, action: str) -> StepResult:
        s = self._require_session()
        if s.page == "done":
            return StepResult(self.observation(), 0.0, True, "the purchase is complete; the episode is over")
        parsed = ACTION.fullmatch(action or "")
        if not parsed:
            return self._invalid("an action is search[keywords] or click[button]")
        verb, argument = parsed[1].lower(), " ".join(parsed[2].split()).lower()
        if not argument:
            return self._invalid(f"{verb}[...] needs something inside the brackets")
        if verb == "search":
            s.results = self.search_index.search(argument)
            s.page, s.page_num, s.asin, s.options = "results", 1, None, {}
            return StepResult(self.observation(), 0.0, False)
        button = self.clickables().get(argument)
        if button is None:
            shown = argument if len(argument) <= 80 else argument[:77] + "..."
            return self._invalid(f"there is no {shown!r} to click on this page")
        return self._click(*button, text=argument)

    def clickables(self) -> Dict[str, Tuple[str, str]]:
        """Lower-cased button text -> (kind, value) for the current page."""
        s = self._require_session()
        buttons: Dict[str, Tuple[str, str]] = {}
        if s.page in ("search", "done"):
            return buttons
        buttons[BACK_TO_SEARCH.lower()] = ("back", "")
        if s.page == "results":
            if s.page_num > 1:
                buttons[PREV.lower()] = ("prev", "")
            if s.page_num < self._last_page():
                buttons[NEXT.lower()] = ("next", "")
            for asin in self._page_asins():
                buttons[asin.lower()] = ("product", asin)
            return buttons
        buttons[PREV.lower()] = ("prev", "")
        if s.page == "item":
            for name in SUB_PAGES:
                buttons[name.lower()] = ("sub", name.lower())
            buttons[BUY.lower()] = ("buy", "")
            for name, values in self.product.options.items():
                for value in values:
                    buttons.setdefault(" ".join(value.split()), ("option", name))
        return buttons

    @property
    def product(self) -> Product:
        return self.catalog.products[self._require_session().asin]

    # ------------------------------------------------------------------ clicks
    def _click(self, kind: str, value: str, text: str) -> StepResult:
        s = self.session
        if kind == "back":
            s.page, s.results, s.page_num, s.asin, s.options = "search", [], 1, None, {}
        elif kind == "next":
            s.page_num += 1
        elif kind == "prev":
            if s.page == "results":
                s.page_num -= 1
            elif s.page == "item":
                s.page, s.asin, s.options = "results", None, {}
            else:
                s.page = "item"
        elif kind == "product":
            s.page, s.asin, s.options = "item", value, {}
        elif kind == "sub":
            s.page = value
        elif kind == "option":
            s.options[value] = text
        elif kind == "buy":
            s.outcome = score(self.product, s.goal, s.options.values())
            s.page = "done"
            return StepResult(self.observation(), s.outcome.reward, True)
        return StepResult(self.observation(), 0.0, False)

    def _invalid(self, reason: str) -> StepResult:
        return StepResult(self.observation(), 0.0, False, reason)

    # ------------------------------------------------------------------ rendering
    def observation(self) -> str:
        s = self._require_session()
        head = ["Instruction:", s.goal.instruction]
        if s.page == "search":
            return SEP.join(["WebShop", *head, "Search"])
        if s.page == "done":
            o = s.outcome
            chosen = ", ".join(f"{k}: {v}" for k, v in s.options.items()) or "none"
            return SEP.join(["Thank you for shopping with us!", "Purchased", s.asin, "Options", chosen,
                             "Your score (min 0.0, max 1.0)", f"{o.reward:.4g}"])
        parts = [*head, BACK_TO_SEARCH]
        if s.page == "results":
            parts.append(f"Page {s.page_num} (Total results: {len(s.results)})")
            if s.page_num > 1:
                parts.append(PREV)
            if s.page_num < self._last_page():
                parts.append(NEXT)
            for asin in self._page_asins():
                p = self.catalog.products[asin]
                parts += [asin, p.title, p.price_tag]
            return SEP.join(parts)
        p = self.product
        parts.append(PREV)
        if s.page == "item":
            for name, values in p.options.items():
                parts += [name, *values]
            parts += [p.title, f"Price: {p.price_tag}", f"Rating: {p.rating}", *SUB_PAGES, BUY]
        elif s.page == "description":
            parts += [p.description] if p.description else []
        elif s.page == "features":
            parts += p.features
        elif s.page == "reviews":
            for r in p.reviews:
                parts += [r.title, f"{r.score} out of 5 stars", r.body]
        return SEP.join(x for x in parts if x)

    # ------------------------------------------------------------------ helpers
    def _page_asins(self) -> List[str]:
        s = self.session
        start = (s.page_num - 1) * RESULTS_PER_PAGE
        return s.results[start: start + RESULTS_PER_PAGE]

    def _last_page(self) -> int:
        return max(1, -(-len(self.session.results) // RESULTS_PER_PAGE))

    def _require_session(self) -> Session:
        if self.session is None:
            raise RuntimeError("call reset(goal_index) before acting")
        return self.session
