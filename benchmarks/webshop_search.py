"""Search latency of the WebShop engine: BM25 over generated catalogs of 1k and 100k products.

    python -m benchmarks.webshop_search [--sizes 1000 100000] [--queries 300] [--backend bm25s]
    python -m benchmarks.webshop_search --compare     # bm25s against Lucene (needs pyserini + Java 21)

For each size, generates a catalog in memory (same generator as setup.sh, seed 0), builds the
index, then times ``search`` for the search queries of the catalog's goal instructions (what
the expert types), and prints p50 / p95 / mean latency in milliseconds, against the targets of
5 ms (1k products) and 50 ms (100k products) at p50. Also prints index build time and how often
the goal's own product is among the 50 hits. ``--compare`` also builds the other backend on the
same catalog and prints how far the two rankings agree (same first hit; shared hits in the top
10 and top 50).
"""

from __future__ import annotations

import argparse
import statistics
import time

from eto_webshop.catalog import Catalog
from eto_webshop.expert import search_query
from eto_webshop.generate import generate
from eto_webshop.search import BACKENDS, make_search

TARGET_P50_MS = {1_000: 5.0, 100_000: 50.0}


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    p.add_argument("--queries", type=int, default=300, help="goal instructions to search per size")
    p.add_argument("--backend", choices=BACKENDS, default="bm25s")
    p.add_argument("--index-dir", default="/tmp/webshop-bench-index", help="lucene only: where to build indexes")
    p.add_argument("--compare", action="store_true", help="also rank with the other backend and compare")
    args = p.parse_args()
    print(f"backend {args.backend}")  # auto: lucene where pyserini and Java 21 run, else bm25s
    for size in args.sizes:
        started = time.perf_counter()
        catalog = Catalog.from_records(*generate(size, seed=0), source="generated")
        generated = time.perf_counter() - started
        products = list(catalog.products.values())
        started = time.perf_counter()
        search = make_search(products, args.backend, f"{args.index_dir}-{size}")
        built = time.perf_counter() - started
        goals = catalog.goals[: args.queries]
        search.search("warm up")
        latencies, found = [], 0
        for goal in goals:
            query = search_query(goal.instruction)
            t = time.perf_counter()
            hits = search.search(query)
            latencies.append((time.perf_counter() - t) * 1000)
            found += goal.asin in hits
        p50 = percentile(latencies, 0.5)
        target = TARGET_P50_MS.get(size)
        verdict = f" (target <= {target:g} ms: {'met' if p50 <= target else 'NOT met'})" if target else ""
        print(f"{size:>7} products: catalog {generated:.1f} s, index {built:.1f} s | {len(goals)} searches: "
              f"p50 {p50:.2f} ms{verdict}, p95 {percentile(latencies, 0.95):.2f} ms, "
              f"mean {statistics.mean(latencies):.2f} ms | goal product in the top 50: {found / len(goals):.0%}")
        if args.compare:
            other_name = "lucene" if search.backend == "bm25s" else "bm25s"
            other = make_search(products, other_name, f"{args.index_dir}-{size}")
            compare(search, other, [search_query(g.instruction) for g in goals], search.backend, other_name)


def compare(a, b, queries, name_a: str, name_b: str) -> None:
    same_first, shared10, shared50 = 0, [], []
    for query in queries:
        hits_a, hits_b = a.search(query), b.search(query)
        same_first += bool(hits_a and hits_b and hits_a[0] == hits_b[0])
        shared10.append(len(set(hits_a[:10]) & set(hits_b[:10])) / max(1, min(10, len(hits_a), len(hits_b))))
        shared50.append(len(set(hits_a) & set(hits_b)) / max(1, min(len(hits_a), len(hits_b))))
    print(f"        {name_a} vs {name_b}: same first hit {same_first / len(queries):.0%}, shared top-10 "
          f"{statistics.mean(shared10):.0%}, shared top-50 {statistics.mean(shared50):.0%}")


if __name__ == "__main__":
    main()
