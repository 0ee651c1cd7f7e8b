"""How hard is a WebShop catalog? Three shoppers that do not learn, on its test goals.

    python -m benchmarks.webshop_difficulty                  # the default generated catalog (seed 0)
    python -m benchmarks.webshop_difficulty --seed 1         # another generated catalog
    python -m benchmarks.webshop_difficulty --data-dir data/webshop   # a catalog folder (e.g. the official one)

Plays the test goals (goals 0-199 of a generated catalog; the folder's test.json otherwise) with
the rule baseline (search the instruction, open the first hit, buy), a random clicker and the
scripted expert (``eto_webshop.baselines``, ``eto_webshop.expert``), and prints average reward
(x100, WebShop's "score") and success rate beside the WebShop paper's figures on the real catalog
(Yao et al., 2022, Table 2). The generated catalog is calibrated so that the rule baseline lands
in 40-50 score with 5-15% success while the expert stays at 90 or more.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, List

from eto_webshop import Catalog, WebShop, make_search
from eto_webshop.baselines import random_shopper, rule_shopper
from eto_webshop.expert import play
from eto_webshop.generate import DEFAULT_NUM_PRODUCTS, generate

NUM_TEST_GOALS = 200                       # WebShop's (and ETO's) test split size
RULE_SCORE_BAND = (40.0, 50.0)             # the calibration targets (WebShop paper: 45.6 / 9.6%)
RULE_SUCCESS_BAND = (5.0, 15.0)
EXPERT_MIN_SCORE = 90.0
# WebShop paper, Table 2 (score = average reward x 100, success rate in %), real catalog.
PAPER = {"rule": (45.6, 9.6), "IL": (59.9, 29.1), "IL+RL": (62.4, 28.7), "human expert": (82.1, 59.6)}


@dataclass
class Result:
    name: str
    rewards: List[float]

    @property
    def score(self) -> float:
        return 100 * statistics.mean(self.rewards)

    @property
    def success(self) -> float:
        return 100 * sum(r >= 1.0 for r in self.rewards) / len(self.rewards)


def load(args) -> tuple:
    """(catalog, test goal indices)."""
    if args.data_dir:
        catalog = Catalog.load(args.data_dir)
        split = os.path.join(args.data_dir, "test.json")
        if os.path.isfile(split):
            with open(split, encoding="utf-8") as f:
                return catalog, [int(t["goal_index"]) for t in json.load(f)]
        return catalog, list(range(min(NUM_TEST_GOALS, len(catalog.goals))))
    catalog = Catalog.from_records(*generate(args.num_products, seed=args.seed), source="generated")
    return catalog, list(range(NUM_TEST_GOALS))


def evaluate(shop: WebShop, goals: List[int], seed: int = 0) -> Dict[str, Result]:
    rng = random.Random(seed)
    shoppers: Dict[str, Callable[[int], float]] = {
        "rule": lambda g: rule_shopper(shop, g),
        "random": lambda g: random_shopper(shop, g, rng),
        "expert": lambda g: play(shop, g)[0],
    }
    return {name: Result(name, [shopper(g) for g in goals]) for name, shopper in shoppers.items()}


def check_calibration(results: Dict[str, Result]) -> List[str]:
    """What misses the calibration targets (empty when all are met)."""
    misses = []
    rule, expert = results["rule"], results["expert"]
    if not RULE_SCORE_BAND[0] <= rule.score <= RULE_SCORE_BAND[1]:
        misses.append(f"rule score {rule.score:.1f} outside {RULE_SCORE_BAND}")
    if not RULE_SUCCESS_BAND[0] <= rule.success <= RULE_SUCCESS_BAND[1]:
        misses.append(f"rule success {rule.success:.1f}% outside {RULE_SUCCESS_BAND}")
    if expert.score < EXPERT_MIN_SCORE:
        misses.append(f"expert score {expert.score:.1f} below {EXPERT_MIN_SCORE}")
    return misses


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="generator seed (ignored with --data-dir)")
    p.add_argument("--num-products", type=int, default=DEFAULT_NUM_PRODUCTS, help="products to generate")
    p.add_argument("--data-dir", default=None, help="measure this catalog folder instead of generating one")
    p.add_argument("--backend", default="bm25s", choices=("auto", "bm25s", "lucene"), help="search engine")
    args = p.parse_args()
    started = time.perf_counter()
    catalog, goals = load(args)
    index_dir = os.path.join(args.data_dir, "search_index") if args.data_dir else tempfile.mkdtemp()
    shop = WebShop(catalog, make_search(list(catalog.products.values()), args.backend, index_dir))
    results = evaluate(shop, goals)
    where = args.data_dir or f"generated catalog, seed {args.seed}, {len(catalog.products)} products"
    print(f"{len(goals)} test goals of the {where} ({time.perf_counter() - started:.1f} s)\n")
    print("| shopper | score (here) | success % (here) | score (WebShop paper) | success % (WebShop paper) |")
    print("|---|---|---|---|---|")
    paper_names = {"rule": "rule", "expert": "human expert"}
    for name, result in results.items():
        paper = PAPER.get(paper_names.get(name, ""), ("", ""))
        print(f"| {name} | {result.score:.1f} | {result.success:.1f} | {paper[0]} | {paper[1]} |")
    print("| (IL / IL+RL, for reference) | | | 59.9 / 62.4 | 29.1 / 28.7 |")
    misses = check_calibration(results)
    print("\ncalibration targets " + ("met" if not misses else "missed: " + "; ".join(misses)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
