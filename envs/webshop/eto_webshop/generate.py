"""Generate a WebShop catalog offline, in the official schema, deterministically.

    python -m eto_webshop.generate --out data/webshop [--num-products 1250] [--seed 0]

Writes ``items_shuffle.json`` (products), ``items_ins_v2.json`` (each product's attributes),
``items_human_ins.json`` (shopping instructions, two per product) and ``catalog.json`` (what
made them). Products come from the word lists in ``vocabulary.py``: 28 product types in five
departments, listed in families of one to four look-alikes by different brands (the same title
words, their own attributes, options and price). Each product has two to five attributes; two
thirds of each type's attributes are never in a title and only in a later feature bullet, where
search cannot see them. Each instruction names the product type, one to three attributes the
title does not show, and zero to three option values; the price cap is added when goals are
built (``catalog.build_goals``), as WebShop does. ``Difficulty`` holds the knobs, calibrated so
that WebShop's rule baseline scores here as on the real catalog (``benchmarks/webshop_difficulty.py``).
The same seed gives the same bytes.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from eto.io import write_json_atomic
from eto_webshop import vocabulary as V
from eto_webshop.catalog import ATTRIBUTE_FILES, CATALOG_META, GOAL_FILE, PRODUCT_FILES, read_meta

GENERATED = "generated"
# Bumped whenever the same seed would give other files: setup.sh regenerates an older catalog.
# 2: product families, hidden attributes and goals calibrated to WebShop's rule baseline.
GENERATOR_VERSION = 2
ASIN_ALPHABET = "0123456789ABCDEFGHIJKLMNPQRSTUVWXYZ"
DEFAULT_NUM_PRODUCTS = 1250
MASS_NOUNS = {"green tea", "olive oil", "dark chocolate", "coffee beans", "mixed nuts", "running shoes", "yoga pants",
              "wool socks", "wireless earbuds"}
POST_NOUN = ("for ", "with ", "in ")        # attributes that read after the noun ("shampoo for dry hair")


def _title_case(text: str) -> str:
    return " ".join(w if w[:1].isdigit() else w[:1].upper() + w[1:] for w in text.split())


def _asin(rng: random.Random, taken: set) -> str:
    while True:
        asin = "B0" + "".join(rng.choice(ASIN_ALPHABET) for _ in range(8))
        if asin not in taken:
            taken.add(asin)
            return asin


@dataclass(frozen=True)
class Difficulty:
    """What makes the generated catalog as hard as WebShop's real one (Yao et al., 2022). The
    defaults are calibrated on the test goals so that the WebShop paper's rule baseline (search
    the instruction, open the first hit, buy) scores 40-50 with 5-15% success, as it does on the
    real catalog (45.6 / 9.6%), while the scripted expert stays at 90 or more
    (``benchmarks/webshop_difficulty.py``, README "WebShop")."""

    # Products come in families: listings of the same item by several brands, with the same title
    # words (near-duplicates on the results page) but their own attributes, options and price.
    family_sizes: Tuple[int, ...] = (1, 2, 3, 4)
    # A family member's price is the first listing's times a factor from this range, so that
    # look-alikes sit on both sides of a goal's price cap.
    family_price_factor: Tuple[float, float] = (0.8, 2.0)
    # Share of each product type's attributes that listings write only in a later feature bullet
    # (and never in a title): the search index (title, description, first bullet, options) never
    # sees them, so only opening a product tells whether it has one.
    hidden_attributes: float = 0.67
    # How many options a goal asks for (0, 1, 2, 3), and how many attributes (1, 2, 3).
    goal_option_weights: Tuple[float, ...] = (0.35, 0.2, 0.25, 0.2)
    goal_attribute_weights: Tuple[float, ...] = (0.55, 0.35, 0.1)


DIFFICULTY = Difficulty()


def _price(rng: random.Random, band: Tuple[float, float]) -> float:
    return round(max(1.0, round(rng.uniform(*band)) - rng.choice((0.01, 0.01, 0.05, 0.51))), 2)


@dataclass
class _Listing:
    record: dict
    attributes: List[str]        # all of the product's attributes
    in_title: List[str]          # those its title shows


def _pricing(rng: random.Random, price: float) -> str:
    pricing = f"${price:.2f}"
    if rng.random() < 0.1:  # a few listings show a price range, as many real ones do
        pricing += f" - ${price + rng.choice((2, 3, 5, 8)):.2f}"
    return pricing


def _options(rng: random.Random, kind: V.ProductType) -> Dict[str, List[str]]:
    options = {}
    for name, values in kind.options.items():
        chosen = set(rng.sample(values, k=rng.randint(2, min(5, len(values)))))
        options[name] = [v for v in values if v in chosen]
    return options


def _listing(rng: random.Random, kind: V.ProductType, asin: str, brand: str, in_title: List[str], extra: str,
             price: float, hidden_kinds: set) -> _Listing:
    """One product record: the title's attributes plus others, each either searchable (in the
    description and first feature bullet) or hidden in a later bullet."""
    others = [a for a in kind.attributes if a not in in_title]
    more = rng.sample(others, k=min(len(others), rng.randint(1, 3)))
    hidden = [a for a in more if a in hidden_kinds]
    shown = [a for a in more if a not in hidden]
    before = " ".join(a for a in in_title if not a.startswith(POST_NOUN))
    after = " ".join(a for a in in_title if a.startswith(POST_NOUN))
    title = " ".join(x for x in (brand, _title_case(before), _title_case(kind.noun), _title_case(after)) if x)
    title += f", {extra}" if extra else ""
    fill = dict(brand=brand, noun=kind.noun)
    description = " ".join([rng.choice(V.DESCRIPTION_OPENERS).format(**fill)]
                           + [rng.choice(V.DESCRIPTION_ATTRIBUTE).format(attr=a) for a in shown]
                           + [rng.choice(V.DESCRIPTION_CLOSERS)])

    def bullet(attr: str) -> str:
        return rng.choice(V.FEATURE_TEMPLATES).format(attr_upper=attr.upper(), reason=rng.choice(V.FEATURE_REASONS))

    generic = [f.format(**fill) for f in rng.sample(V.GENERIC_FEATURES, k=rng.randint(1, 2))]
    # The first bullet is indexed for search: a searchable attribute, or a generic line.
    features = [bullet(a) for a in shown] + generic[:1] + [bullet(a) for a in hidden + in_title] + generic[1:]
    reviews = []
    for _ in range(rng.randint(1, 4)):
        stars = rng.choices((5, 4, 3, 2), weights=(5, 4, 2, 1))[0]
        reviews.append({"title": V.REVIEW_TITLES[stars], "score": stars,
                        "body": rng.choice(V.REVIEWS[stars]).format(**fill)})
    record = {
        "asin": asin, "name": title, "category": kind.category, "query": kind.query,
        "product_category": " › ".join(kind.path), "full_description": description, "small_description": features,
        "pricing": _pricing(rng, price), "images": [], "reviews": reviews,
        "customization_options": {name: [{"value": v, "image": None} for v in values]
                                  for name, values in _options(rng, kind).items()},
    }
    return _Listing(record, list(in_title) + more, list(in_title))


def _family(rng: random.Random, kind: V.ProductType, size: int, taken: set, hidden: set,
            difficulty: Difficulty) -> List[_Listing]:
    """``size`` look-alike listings of one item by different brands."""
    in_title = rng.sample([a for a in kind.attributes if a not in hidden], k=rng.randint(1, 2))
    extra = rng.choice(kind.extras) if kind.extras else ""
    base = _price(rng, kind.price)
    brands = rng.sample(V.BRANDS[kind.category], k=size)
    listings = []
    for i, brand in enumerate(brands):
        price = base if i == 0 else round(max(1.0, base * rng.uniform(*difficulty.family_price_factor)), 2)
        listings.append(_listing(rng, kind, _asin(rng, taken), brand, in_title, extra, price, hidden))
    return listings


def _option_phrase(name: str, value: str) -> str:
    if name == "color":
        return f"in {value}"
    if name in ("flavor", "scent"):
        return f"{value} {name}"
    return f"{name} {value}"


def _instruction(rng: random.Random, kind: V.ProductType, attributes: List[str], options: Dict[str, str]) -> str:
    before = " ".join(a for a in attributes if not a.startswith(POST_NOUN))
    after = " ".join(a for a in attributes if a.startswith(POST_NOUN))
    what = " ".join(x for x in (before, kind.noun, after) if x)
    if kind.noun not in MASS_NOUNS:
        what = ("an " if what[0] in "aeiou" else "a ") + what
    opts = " and ".join(_option_phrase(n, v) for n, v in options.items())
    return rng.choice(V.INSTRUCTION_TEMPLATES).format(what=what, opts=f", {opts}" if opts else "")


def _goal(rng: random.Random, kind: V.ProductType, listing: _Listing, difficulty: Difficulty) -> dict:
    """A shopping goal written for one listing: attributes it has (those its title does not show
    first: a shopper asks for what matters to them, not for what the title says) and options."""
    record = listing.record
    n_attr = rng.choices(range(1, len(difficulty.goal_attribute_weights) + 1), difficulty.goal_attribute_weights)[0]
    untitled = [a for a in listing.attributes if a not in listing.in_title]
    wanted = rng.sample(untitled, k=min(n_attr, len(untitled)))
    if len(wanted) < n_attr:
        wanted += rng.sample(listing.in_title, k=min(n_attr - len(wanted), len(listing.in_title)))
    option_names = sorted(record["customization_options"])
    n_opt = rng.choices(range(len(difficulty.goal_option_weights)), difficulty.goal_option_weights)[0]
    names = rng.sample(option_names, k=min(n_opt, len(option_names)))
    chosen = {n: rng.choice(record["customization_options"][n])["value"] for n in sorted(names)}
    return {"asin": record["asin"], "instruction": _instruction(rng, kind, wanted, chosen),
            "instruction_attributes": wanted, "instruction_options": list(chosen.values())}


def generate(num_products: int = DEFAULT_NUM_PRODUCTS, seed: int = 0, goals_per_product: int = 2,
             difficulty: Difficulty = DIFFICULTY):
    """(products, attributes by asin, instructions by asin), in the official files' schema."""
    rng = random.Random(seed)
    taken: set = set()
    products, attributes, instructions = [], {}, {}
    hidden = {kind.noun: set(rng.sample(kind.attributes, k=round(difficulty.hidden_attributes * len(kind.attributes))))
              for kind in V.PRODUCT_TYPES}
    family = 0
    while len(products) < num_products:
        kind = V.PRODUCT_TYPES[family % len(V.PRODUCT_TYPES)]
        family += 1
        size = min(rng.choice(difficulty.family_sizes), num_products - len(products), len(V.BRANDS[kind.category]))
        for listing in _family(rng, kind, size, taken, hidden[kind.noun], difficulty):
            asin = listing.record["asin"]
            products.append(listing.record)
            attributes[asin] = {"attributes": listing.attributes}
            instructions[asin] = [_goal(rng, kind, listing, difficulty) for _ in range(goals_per_product)]
    return products, attributes, instructions


def write_json(path: str, data) -> None:
    """Written whole or not at all (a killed run leaves no half file), without whitespace."""
    write_json_atomic(path, data, compact=True)


def existing_source(out: str) -> Optional[str]:
    """What made the catalog in ``out``: "generated", "official", "unknown" (files without a
    record, e.g. copied by hand: left alone), or None if there is no finished catalog there, or
    only one an older version of this generator made (safe to redo: it is ours and reproducible)."""
    meta = read_meta(out)
    if meta is not None and not meta.get("complete", True):
        return None  # a download or generation that was cut short: safe to redo
    if meta is not None and meta.get("source") == GENERATED and meta.get("version", 1) != GENERATOR_VERSION:
        return None
    if not any(os.path.isfile(os.path.join(out, name)) for name in PRODUCT_FILES):
        return None
    return (meta or {}).get("source") or "unknown"


def write_catalog(out: str, num_products: int, seed: int) -> dict:
    os.makedirs(out, exist_ok=True)
    meta = {"source": GENERATED, "generator": "eto_webshop.generate", "version": GENERATOR_VERSION, "seed": seed,
            "complete": False}
    write_json(os.path.join(out, CATALOG_META), meta)  # first: a killed run is known to be unfinished
    products, attributes, instructions = generate(num_products, seed)
    write_json(os.path.join(out, PRODUCT_FILES[0]), products)
    write_json(os.path.join(out, ATTRIBUTE_FILES[0]), attributes)
    write_json(os.path.join(out, GOAL_FILE), instructions)
    meta.update({"num_products": len(products), "num_instructions": sum(len(v) for v in instructions.values()),
                 "departments": sorted({p["category"] for p in products}),
                 "product_types": len({p["query"] for p in products}), "complete": True})
    write_json(os.path.join(out, CATALOG_META), meta)
    return meta


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="folder for the catalog files")
    p.add_argument("--num-products", type=int, default=DEFAULT_NUM_PRODUCTS, help="products to generate (two goals each)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files")
    p.add_argument("--overwrite", action="store_true", help="replace catalog files not made by this generator")
    args = p.parse_args(argv)
    if args.num_products < 1:
        print("error: --num-products must be at least 1", file=sys.stderr)
        return 2
    source = existing_source(args.out)
    if source not in (None, GENERATED) and not args.overwrite:
        print(f"error: {args.out} already holds a catalog not made by this generator ({source}, e.g. the official "
              "WebShop data); choose another --out or pass --overwrite", file=sys.stderr)
        return 2
    meta = write_catalog(args.out, args.num_products, args.seed)
    print(f"generated {meta['num_products']} products of {meta['product_types']} types in "
          f"{len(meta['departments'])} departments, {meta['num_instructions']} instructions -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
