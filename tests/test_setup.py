"""setup.sh: a rerun on a ready machine changes nothing."""

import os
import subprocess

from conftest import BUNDLED_MODEL, REPO_ROOT


def _snapshot():
    paths = [os.path.join(BUNDLED_MODEL, f) for f in sorted(os.listdir(BUNDLED_MODEL))]
    return {p: os.stat(p).st_mtime_ns for p in paths}


def test_setup_rerun_is_a_no_op(bundled_model_path):
    before = _snapshot()
    result = subprocess.run(["bash", "setup.sh", "--offline"], cwd=REPO_ROOT, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    done = out.split("Done:\n", 1)[1].split("Skipped:", 1)[0]
    assert done.strip() == "", f"a rerun did work:\n{done}"
    assert "packages: already installed" in out
    assert "is ready (skipped)" in out
    assert _snapshot() == before


def test_setup_help_and_bad_option():
    help_ = subprocess.run(["bash", "setup.sh", "--help"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert help_.returncode == 0 and "Usage: bash setup.sh" in help_.stdout
    bad = subprocess.run(["bash", "setup.sh", "--bogus"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == "setup.sh: unknown option '--bogus' (see --help)"
