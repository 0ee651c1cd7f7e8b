"""Generate a WebShop catalog offline, in the official schema, deterministically.

    python -m eto_webshop.generate --out data/webshop [--num-products 1250] [--seed 0]

Writes ``items_shuffle.json`` (products), ``items_ins_v2.json`` (each product's attributes),
``items_human_ins.json`` (shopping instructions, two per product) and ``catalog.json`` (what
made them). Products come from the word lists in ``vocabulary.py``: 28 product types in five
departments; each product gets a brand, two to four attributes, option values with one price,
a description, feature bullets and reviews. Each instruction names the product type, one or two
of its attributes and a value for some of its options; the price cap is added when goals are
built (``catalog.build_goals``), as WebShop does. The same seed gives the same bytes.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from typing import Dict, List, Optional, Tuple

from eto.io import write_json_atomic
from eto_webshop import vocabulary as V
from eto_webshop.catalog import ATTRIBUTE_FILES, CATALOG_META, GOAL_FILE, PRODUCT_FILES, read_meta

GENERATED = "generated"
ASIN_ALPHABET = "0123456789ABCDEFGHIJKLMNPQRSTUVWXYZ"
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


def _price(rng: random.Random, band: Tuple[float, float]) -> float:
    return round(max(1.0, round(rng.uniform(*band)) - rng.choice((0.01, 0.01, 0.05, 0.51))), 2)


def _product(rng: random.Random, kind: V.ProductType, asin: str) -> Tuple[dict, List[str]]:
    brand = rng.choice(V.BRANDS[kind.category])
    attributes = rng.sample(kind.attributes, k=rng.randint(2, min(4, len(kind.attributes))))
    options = {}
    for name, values in kind.options.items():
        chosen = set(rng.sample(values, k=rng.randint(2, min(5, len(values)))))
        options[name] = [v for v in values if v in chosen]
    in_title = attributes[: rng.randint(1, 2)]
    before = " ".join(a for a in in_title if not a.startswith(POST_NOUN))
    after = " ".join(a for a in in_title if a.startswith(POST_NOUN))
    title = " ".join(x for x in (brand, _title_case(before), _title_case(kind.noun), _title_case(after)) if x)
    title += f", {rng.choice(kind.extras)}" if kind.extras else ""
    price = _price(rng, kind.price)
    pricing = f"${price:.2f}"
    if rng.random() < 0.1:  # a few listings show a price range, as many real ones do
        pricing += f" - ${price + rng.choice((2, 3, 5, 8)):.2f}"
    fill = dict(brand=brand, noun=kind.noun)
    description = " ".join([rng.choice(V.DESCRIPTION_OPENERS).format(**fill)]
                           + [rng.choice(V.DESCRIPTION_ATTRIBUTE).format(attr=a) for a in attributes[-2:]]
                           + [rng.choice(V.DESCRIPTION_CLOSERS)])
    features = [rng.choice(V.FEATURE_TEMPLATES).format(attr_upper=a.upper(), reason=rng.choice(V.FEATURE_REASONS))
                for a in attributes]
    features += [f.format(**fill) for f in rng.sample(V.GENERIC_FEATURES, k=rng.randint(1, 2))]
    reviews = []
    for _ in range(rng.randint(1, 4)):
        stars = rng.choices((5, 4, 3, 2), weights=(5, 4, 2, 1))[0]
        reviews.append({"title": V.REVIEW_TITLES[stars], "score": stars,
                        "body": rng.choice(V.REVIEWS[stars]).format(**fill)})
    record = {
        "asin": asin, "name": title, "category": kind.category, "query": kind.query,
        "product_category": " › ".join(kind.path), "full_description": description, "small_description": features,
        "pricing": pricing, "images": [], "reviews": reviews,
        "customization_options": {name: [{"value": v, "image": None} for v in values] for name, values in options.items()},
    }
    return record, attributes


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


def generate(num_products: int = 1250, seed: int = 0, goals_per_product: int = 2):
    """(products, attributes by asin, instructions by asin), in the official files' schema."""
    rng = random.Random(seed)
    taken: set = set()
    products, attributes, instructions = [], {}, {}
    for i in range(num_products):
        kind = V.PRODUCT_TYPES[i % len(V.PRODUCT_TYPES)]
        record, attrs = _product(rng, kind, _asin(rng, taken))
        asin = record["asin"]
        products.append(record)
        attributes[asin] = {"attributes": attrs}
        goals = []
        for _ in range(goals_per_product):
            wanted = rng.sample(attrs, k=rng.randint(1, min(2, len(attrs))))
            names = rng.sample(sorted(record["customization_options"]),
                               k=rng.randint(1, len(record["customization_options"])))
            chosen = {n: rng.choice(record["customization_options"][n])["value"] for n in sorted(names)}
            goals.append({"asin": asin, "instruction": _instruction(rng, kind, wanted, chosen),
                          "instruction_attributes": wanted, "instruction_options": list(chosen.values())})
        instructions[asin] = goals
    return products, attributes, instructions


def write_json(path: str, data) -> None:
    """Written whole or not at all (a killed run leaves no half file), without whitespace."""
    write_json_atomic(path, data, compact=True)


def existing_source(out: str) -> Optional[str]:
    """What made the catalog in ``out``: "generated", "official", "unknown" (files without a
    record, e.g. copied by hand: left alone), or None if there is no finished catalog there."""
    meta = read_meta(out)
    if meta is not None and not meta.get("complete", True):
        return None  # a download or generation that was cut short: safe to redo
    if not any(os.path.isfile(os.path.join(out, name)) for name in PRODUCT_FILES):
        return None
    return (meta or {}).get("source") or "unknown"


def write_catalog(out: str, num_products: int, seed: int) -> dict:
    os.makedirs(out, exist_ok=True)
    meta = {"source": GENERATED, "generator": "eto_webshop.generate", "seed": seed, "complete": False}
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
    p.add_argument("--num-products", type=int, default=1250, help="products to generate (two goals each)")
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
