"""Products and goals, read from files in the official WebShop schema.

Both data sources use the same three files, so one loader serves them:

- ``items_shuffle.json`` (or ``items_shuffle_1000.json``): a list of products with ``asin``,
  ``name``, ``category``, ``query``, ``product_category`` (levels joined by " › "),
  ``full_description``, ``small_description`` (the feature bullets), ``pricing`` ("$12.99" or
  "$10.00 - $20.00"), ``customization_options`` ({name: [{"value": ...}, ...]}) and, in our
  generated catalog only, ``reviews``;
- ``items_ins_v2.json``: ``{asin: {"attributes": [...], ...}}``, the attributes a product has;
- ``items_human_ins.json``: ``{asin: [{"instruction", "instruction_attributes",
  "instruction_options"}, ...]}``, the shopping goals written for a product.

Goals are built as in WebShop: one per instruction with attributes, a price cap drawn from the
two-to-four round amounts above the product's price ("..., and price lower than 40.00 dollars"),
then shuffled with seed 233, so a goal index ("session") names the same goal as in WebShop and
ETO. Unlike WebShop, the price draws use their own seeded generator, so the price in each
instruction is the same on every load.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

PRODUCT_FILES = ("items_shuffle.json", "items_shuffle_1000.json")
ATTRIBUTE_FILES = ("items_ins_v2.json", "items_ins_v2_1000.json")
GOAL_FILE = "items_human_ins.json"
CATALOG_META = "catalog.json"          # which source the files came from (setup writes it)
CATEGORY_SEPARATOR = "›"
GOAL_SHUFFLE_SEED = 233        # WebShop's: goal indices mean the same goals as in WebShop and ETO
PRICE_DRAW_SEED = 0            # ours: WebShop drew price caps unseeded
PRICE_STEPS = [10.0 * i for i in range(1, 100)]
NO_PRICE = 100.0               # WebShop's price for a listing without one


class CatalogError(ValueError):
    """A data file is missing or does not follow the schema."""


class Review(NamedTuple):
    title: str
    score: int
    body: str


@dataclass(slots=True)   # 1.18M of them in the official catalog: no per-object __dict__
class Product:
    asin: str
    title: str
    category: str
    query: str
    product_category: str
    description: str
    features: List[str]
    price: float                     # what buying costs (the low end of a price range)
    price_tag: str                   # what pages show: "$12.99" or "$10.0 to $20.0"
    options: Dict[str, List[str]]    # option name -> values, lower-cased as WebShop does
    attributes: List[str]
    reviews: Tuple[Review, ...] = ()

    @property
    def rating(self) -> str:
        if not self.reviews:
            return "N.A."
        return f"{sum(r.score for r in self.reviews) / len(self.reviews):.1f}"

    def search_text(self) -> str:
        """The text the search index holds for this product (WebShop's document contents)."""
        options = ", and ".join(f"{name}: {', '.join(values)}" for name, values in self.options.items())
        first_feature = self.features[0] if self.features else ""
        return " ".join([self.title, self.description, first_feature, options]).lower()


@dataclass(frozen=True, slots=True)
class Goal:
    asin: str                        # the product the instruction was written for
    instruction: str                 # shown on every page, price cap included
    attributes: Tuple[str, ...]
    options: Tuple[str, ...]
    price_upper: float
    query: str
    category: str
    product_category: str
    name: str                        # the target's title (the type reward compares titles)


def parse_pricing(pricing) -> Tuple[float, str]:
    """A listing's ``pricing`` string -> (price paid, price tag), by WebShop's rules."""
    values = []
    for part in str(pricing or "").split("$")[1:]:
        digits = re.sub(r"[^\d.]", "", part)
        try:
            values.append(float(Decimal(digits)))
        except InvalidOperation:
            continue
    if not values:
        return NO_PRICE, f"${NO_PRICE}"
    if len(values) == 1:
        return values[0], f"${values[0]}"
    return values[0], f"${values[0]} to ${values[1]}"


def option_value(raw: str) -> str:
    return raw.strip().replace("/", " | ").lower()


def _shared(text) -> str:
    """One copy of a string that recurs across products (categories, option values, attributes,
    stock sentences): a 1.18M-product catalog would otherwise hold millions of copies."""
    return sys.intern(str(text))


def product_from_record(record: dict, attributes: Sequence[str]) -> Product:
    try:
        options = {}
        for name, contents in (record.get("customization_options") or {}).items():
            if contents:
                options[_shared(name.lower())] = [_shared(option_value(c["value"])) for c in contents]
        features = record.get("small_description") or []
        price, price_tag = parse_pricing(record.get("pricing"))
        return Product(
            asin=record["asin"], title=record["name"], category=_shared(record.get("category", "")),
            query=_shared(str(record.get("query", "")).lower().strip()),
            product_category=_shared(record.get("product_category", "")),
            description=record.get("full_description") or "",
            features=[_shared(features)] if isinstance(features, str) else [_shared(f) for f in features],
            price=price, price_tag=price_tag, options=options, attributes=[_shared(a) for a in attributes],
            reviews=tuple(Review(_shared(r.get("title", "")), int(r["score"]), _shared(r.get("body", "")))
                          for r in record.get("reviews") or ()),
        )
    except (KeyError, TypeError, AttributeError) as error:
        raise CatalogError(f"product {record.get('asin', '?') if isinstance(record, dict) else record!r}: "
                           f"malformed record ({type(error).__name__}: {error})") from None


def price_cap(price: float, rng: random.Random) -> Optional[float]:
    """WebShop's rule: the larger of two amounts drawn from the four round tens above the price."""
    above = [p for p in PRICE_STEPS if p > price][:4]
    if len(above) < 2:
        return None
    return sorted(rng.sample(above, 2))[1]


def build_goals(products: Dict[str, Product], instructions: Dict[str, List[dict]]) -> List[Goal]:
    """Goals in WebShop's order (products in file order, then their instructions), shuffled."""
    rng = random.Random(PRICE_DRAW_SEED)
    goals = []
    for asin, product in products.items():
        for item in instructions.get(asin, []):
            attributes = item.get("instruction_attributes") or []
            if not attributes:
                continue
            cap = price_cap(product.price, rng)
            price_text = f", and price lower than {cap:.2f} dollars" if cap is not None else ""
            goals.append(Goal(
                asin=asin, instruction=item["instruction"].strip(".") + price_text,
                attributes=tuple(attributes), options=tuple(item.get("instruction_options") or ()),
                price_upper=cap if cap is not None else 1_000_000.0, query=product.query,
                category=product.category, product_category=product.product_category, name=product.title,
            ))
    random.Random(GOAL_SHUFFLE_SEED).shuffle(goals)
    return goals


def _goal_fields(item: dict) -> dict:
    """The fields of an instruction record that goals use (WebShop's file holds more)."""
    return {"instruction": item.get("instruction", ""),
            "instruction_attributes": [_shared(a) for a in item.get("instruction_attributes") or ()],
            "instruction_options": [_shared(o) for o in item.get("instruction_options") or ()]}


def _stream(path: str, kind: str, prefix: str = ""):
    """The elements of a top-level JSON list (``kind="items"``) or the (key, value) pairs of a
    top-level object (``"kvitems"``), parsed one at a time: the official product file is several
    GB, and holding its parsed JSON beside the products built from it would double the memory."""
    import ijson

    with open(path, "rb") as f:
        first = f.read(1024).lstrip()[:1]
        if first != (b"[" if kind == "items" else b"{"):
            raise CatalogError(f"{path}: expected a JSON {'list' if kind == 'items' else 'object'}")
        f.seek(0)
        try:
            iterate = ijson.items if kind == "items" else ijson.kvitems
            yield from iterate(f, prefix + ("item" if kind == "items" else ""), use_float=True)
        except ijson.JSONError as error:
            raise CatalogError(f"{path} is not valid JSON: {error}") from None


def _first_existing(data_dir: str, names: Sequence[str]) -> str:
    for name in names:
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    raise CatalogError(f"no {' or '.join(names)} in {data_dir}: run `bash setup.sh` (it downloads the official "
                       "WebShop data when online, or generates a catalog offline)")


def read_meta(data_dir: str) -> Optional[dict]:
    """``catalog.json``: which source wrote the catalog files, and whether it finished; None if absent."""
    try:
        with open(os.path.join(data_dir, CATALOG_META), encoding="utf-8") as f:
            meta = json.load(f)
        return meta if isinstance(meta, dict) else None
    except (OSError, ValueError):
        return None


@dataclass
class Catalog:
    products: Dict[str, Product]     # asin -> product, in file order
    goals: List[Goal]                # goal index ("session") -> goal
    source: str = ""                 # "official", "generated", or "" when unknown

    @classmethod
    def load(cls, data_dir: str) -> "Catalog":
        """Read a catalog folder; the product and attribute files are streamed (the official
        product file is several GB), the goals read whole."""
        product_path = _first_existing(data_dir, PRODUCT_FILES)
        attribute_path = _first_existing(data_dir, ATTRIBUTE_FILES)
        goal_path = os.path.join(data_dir, GOAL_FILE)
        if not os.path.isfile(goal_path):
            raise CatalogError(f"no {GOAL_FILE} in {data_dir}: the shopping goals are missing")
        instructions = {asin: [_goal_fields(item) for item in items if isinstance(item, dict)]
                        for asin, items in _stream(goal_path, "kvitems") if isinstance(items, list)}
        # Only the attribute lists are kept: WebShop's file also holds per-product texts we never read.
        attributes = {asin: {"attributes": (value or {}).get("attributes") if isinstance(value, dict) else None}
                      for asin, value in _stream(attribute_path, "kvitems")}
        source = (read_meta(data_dir) or {}).get("source", "")
        return cls.from_records(_stream(product_path, "items"), attributes, instructions, source=source)

    @classmethod
    def from_records(cls, records: Iterable[dict], attributes: Dict[str, dict], instructions: Dict[str, List[dict]],
                     source: str = "") -> "Catalog":
        products: Dict[str, Product] = {}
        for record in records:
            asin = record.get("asin") if isinstance(record, dict) else None
            # WebShop skips listings without a proper ASIN and repeated ones.
            if not isinstance(asin, str) or asin == "nan" or len(asin) > 10 or asin in products:
                continue
            products[asin] = product_from_record(record, (attributes.get(asin) or {}).get("attributes") or [])
        return cls(products, build_goals(products, instructions), source=source)
