"""Download the official WebShop data (online only), as WebShop's and ETO's setup scripts do.

    python -m eto_webshop.download --out data/webshop [--size all|small]

Files (Google Drive, via ``gdown``): the products (``items_shuffle.json``, 1.18M products; or
``items_shuffle_1000.json`` with ``--size small``), their attributes (``items_ins_v2*.json``) and
the 12,087 human-written instructions (``items_human_ins.json``). The original ETO's goal index
lists are committed in the ETO project (``data/webshop_original_splits.json``). Official files
already present are kept; a generated catalog in the folder is replaced. ``catalog.json``
records the source.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from eto.io import replace_atomic
from eto_webshop.catalog import ATTRIBUTE_FILES, CATALOG_META, GOAL_FILE, PRODUCT_FILES, read_meta
from eto_webshop.generate import GENERATED, write_json

# WebShop's setup.sh: Google Drive file ids.
DRIVE_FILES = {
    "all": {"items_shuffle.json": "1A2whVgOO0euk5O13n2iYDM0bQRkkRduB",
            "items_ins_v2.json": "1s2j6NgHljiZzQNL3veZaAiyW_qDEgBNi"},
    "small": {"items_shuffle_1000.json": "1EgHdxQ_YxqIQlvvq5iKlCrkEKR6-j0Ib",
              "items_ins_v2_1000.json": "1IduG0xl544V_A_jv3tHXC0kyFi7PnyBu"},
}
HUMAN_INSTRUCTIONS = {"items_human_ins.json": "14Kb5SPBk_jfdLZ_CDBNitW98QLDlKR5O"}
OFFICIAL = "official"


def _drive(file_id: str, path: str) -> None:
    try:
        import gdown
    except ImportError:
        raise RuntimeError("downloading from Google Drive needs gdown: pip install gdown") from None
    if gdown.download(id=file_id, output=path + ".partial", quiet=False) is None:
        raise RuntimeError(f"could not download {os.path.basename(path)} from Google Drive")
    replace_atomic(path + ".partial", path)


def download(out: str, size: str = "all") -> List[str]:
    os.makedirs(out, exist_ok=True)
    if (read_meta(out) or {}).get("source") == GENERATED:  # official files replace a generated catalog, never mix
        for name in (*PRODUCT_FILES, *ATTRIBUTE_FILES, GOAL_FILE, CATALOG_META):
            if os.path.isfile(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
    write_json(os.path.join(out, CATALOG_META), {"source": OFFICIAL, "size": size, "complete": False})
    fetched = []
    for name, file_id in {**DRIVE_FILES[size], **HUMAN_INSTRUCTIONS}.items():
        path = os.path.join(out, name)
        if not os.path.isfile(path):
            _drive(file_id, path)
            fetched.append(name)
    write_json(os.path.join(out, CATALOG_META), {"source": OFFICIAL, "size": size, "complete": True})
    return fetched


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="folder for the data files")
    p.add_argument("--size", choices=sorted(DRIVE_FILES), default="all",
                   help="all: the 1.18M products ETO used; small: WebShop's 1000-product sample")
    args = p.parse_args(argv)
    try:
        fetched = download(args.out, args.size)
    except (OSError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"official WebShop data in {args.out} ({', '.join(fetched) or 'all files were already there'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
