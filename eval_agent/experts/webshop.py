"""WebShop's expert: the scripted shopper of our engine (``eto_webshop.expert.ExpertShopper``),
which knows the goal and reads the page it is on; its rationales are written with its choices."""

from __future__ import annotations

from typing import Optional, Tuple

from eval_agent.experts import Expert


class ShopperExpert(Expert):
    def __init__(self, shop):
        from eto_webshop.expert import ExpertShopper

        self.shop = shop
        self.shopper = ExpertShopper(shop)

    def next_move(self) -> Optional[Tuple[str, str]]:
        return self.shopper.next_action()

    def max_steps(self) -> int:
        from eto_webshop.expert import max_expert_steps

        return max_expert_steps(self.shop.session.goal)
