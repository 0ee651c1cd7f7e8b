"""How fast does a run's view.html load with many episodes? Builds the page of a made-up run whose
evaluations hold ``--episodes`` episodes in all (real episode files from ``--source``, copied under
new task ids), and has headless Chromium open it; prints the file size, the build time, and the
time from navigation to the end of the page's script (``data-loaded-ms``: parsing the HTML and the
embedded JSON, and drawing the first view), for the report view and for an evaluation's task table.

    python -m benchmarks.view_load --source outputs/<model>/sciworld_demo_test --episodes 2000
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

from eval_agent import view
from eto.pipeline.markers import write_marker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, nargs="+", help="folders of episode files to copy from")
    parser.add_argument("--episodes", type=int, default=2000, help="episodes in the page, in all")
    parser.add_argument("--evaluations", type=int, default=4, help="how many evaluations they are spread over")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("error: Chromium is not installed (bash setup.sh installs it when run as root)")
    records = [json.load(open(p)) for folder in args.source for p in sorted(glob.glob(os.path.join(folder, "[!_]*.json")))]
    if not records:
        raise SystemExit("error: no episode files in --source")
    with tempfile.TemporaryDirectory() as tmp:
        per_eval = args.episodes // args.evaluations
        for e in range(args.evaluations):
            folder = os.path.join(tmp, "outputs", f"policy{e}", "task_test")
            os.makedirs(folder)
            for k in range(per_eval):
                record = json.loads(json.dumps(records[k % len(records)]))
                record["meta"]["id"] = f"{record['meta']['id']}-{k}"
                with open(os.path.join(folder, record["meta"]["id"] + ".json"), "w") as f:
                    json.dump(record, f)
            write_marker(os.path.join(tmp, "logs", "stages"), f"eval_{e}", 1,
                         {"row": f"round_{e}", "method": "eto", "round": str(e), "split": "test", "episodes": folder})
        start = time.time()
        page = view.build_page(os.path.join(tmp, "logs"))
        build_s = time.time() - start
        path = os.path.join(tmp, "view.html")
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)
        print(f"{per_eval * args.evaluations} episodes ({len(records)} distinct, copied) in {args.evaluations} "
              f"evaluations: view.html {os.path.getsize(path) / 1e6:.1f} MB, built in {build_s:.1f} s")
        for fragment in ("report", "eval=0", "tasks=test"):
            start = time.time()
            dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                                  f"file://{path}#{fragment}"], capture_output=True, text=True, timeout=300).stdout
            loaded = re.search(r'data-loaded-ms="(\d+)"', dom)
            print(f"  #{fragment}: loaded in {int(loaded.group(1)) / 1000:.2f} s (Chromium's whole run "
                  f"{time.time() - start:.1f} s)" if loaded else f"  #{fragment}: the page's script did not finish")


if __name__ == "__main__":
    main()
