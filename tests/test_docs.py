"""The README and docs/ say what the code does.

- Every ``--flag`` they give to ``run_eto.sh``, ``eval_agent.main``, ``fastchat/train/train.py``,
  ``train_dpo.py`` and ``construct_preference.py`` (in code blocks and inline code, after the
  command's name) appears in that command's ``--help``.
- Every relative link in README.md, docs/ and results/*/README.md resolves: to a file or folder,
  and to a heading of the linked page where it names one (GitHub's anchors).
- The recipe docs/dpo-on-your-own-trajectories.md runs as written, with the tiny model in place of
  the bundled one.
"""

import glob
import os
import re
import subprocess
import sys
from typing import Dict, List, Set, Tuple

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = sorted(["README.md"] + [os.path.relpath(p, REPO_ROOT) for p in glob.glob(os.path.join(REPO_ROOT, "docs", "*.md"))]
               + [os.path.relpath(p, REPO_ROOT) for p in glob.glob(os.path.join(REPO_ROOT, "results", "*", "README.md"))])
HELP = {
    "run_eto.sh": ["bash", "run_eto.sh", "--help"],
    "eval_agent.main": [sys.executable, "-m", "eval_agent.main", "--help"],
    "train.py": [sys.executable, "fastchat/train/train.py", "--help"],
    "train_dpo.py": [sys.executable, "fastchat/train/train_dpo.py", "--help"],
    "construct_preference.py": [sys.executable, "construct_preference.py", "--help"],
}
FLAG = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")


def read(page: str) -> str:
    with open(os.path.join(REPO_ROOT, page), encoding="utf-8") as f:
        return f.read()


def code_spans(text: str) -> List[str]:
    """Fenced blocks (backslash-continued lines joined) and inline code spans outside them."""
    spans, prose = [], []
    for i, part in enumerate(re.split(r"^```[^\n]*\n", text, flags=re.M)):
        if i % 2:  # inside a fence
            spans.append(part.replace("\\\n", " "))
        else:
            prose.append(part)
    for part in prose:
        spans += re.findall(r"`([^`\n]+)`", part.replace("\n", " "))
    return spans


def command_of(token: str) -> str:
    name = os.path.basename(token.strip("`'\"[]()"))
    return name if name in HELP else ("eval_agent.main" if token == "eval_agent.main" else "")


def flags_given(text: str) -> Set[Tuple[str, str]]:
    """(command, --flag) for every flag written after one of HELP's commands."""
    found = set()
    for span in code_spans(text):
        for segment in re.split(r"\n|&&|\|\||;|(?<![|])\|(?![|])", span):
            tokens = segment.split()
            for i, token in enumerate(tokens):
                command = command_of(token)
                if command:
                    found |= {(command, flag) for flag in FLAG.findall(" ".join(tokens[i + 1:]))}
                    break
    return found


@pytest.fixture(scope="module")
def help_texts() -> Dict[str, str]:
    texts = {}
    for name, command in HELP.items():
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
        assert result.returncode == 0, f"{' '.join(command)} failed: {result.stderr[-500:]}"
        texts[name] = result.stdout + result.stderr
    return texts


def test_every_flag_the_docs_give_a_command_is_in_its_help(help_texts):
    given = {(page, command, flag) for page in PAGES for command, flag in flags_given(read(page))}
    assert {command for _, command, _ in given} == set(HELP), "the docs should show every command's flags"
    missing = sorted(f"{page}: {command} {flag}" for page, command, flag in given
                     if not re.search(re.escape(flag) + r"(?![\w-])", help_texts[command]))
    assert not missing, "flags the docs give that the command's --help does not know:\n" + "\n".join(missing)


def test_the_flag_reader_reads_commands_and_nothing_else():
    text = ("```bash\npython fastchat/train/train.py --a 1 \\\n    --b_c 2 && bash run_eto.sh --preset demo\n```\n"
            "Prose `--lonely` and `python -m eval_agent.main --split test`, `train_ppo.py --x`.")
    assert flags_given(text) == {("train.py", "--a"), ("train.py", "--b_c"), ("run_eto.sh", "--preset"),
                                 ("eval_agent.main", "--split")}


def anchors(text: str) -> Set[str]:
    """GitHub's anchors for the headings of a markdown page (code fences skipped)."""
    slugs: Set[str] = set()
    counts: Dict[str, int] = {}
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
            n = counts.get(slug, 0)
            counts[slug] = n + 1
            slugs.add(slug if n == 0 else f"{slug}-{n}")
    return slugs


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        text = read(page)
        for target in re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", "".join(re.split(r"^```.*?^```", text, flags=re.M | re.S))):
            if re.match(r"(https?|mailto):", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = os.path.normpath(os.path.join(REPO_ROOT, os.path.dirname(page), path)) if path else os.path.join(REPO_ROOT, page)
            if not os.path.exists(resolved):
                broken.append(f"{page}: {target} (no such file)")
            elif anchor and resolved.endswith(".md") and anchor not in anchors(open(resolved, encoding="utf-8").read()):
                broken.append(f"{page}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_readme_is_an_entry_point_that_links_every_docs_page():
    readme = read("README.md")
    assert len(readme.splitlines()) <= 300
    for page in PAGES:
        if page.startswith("docs/"):
            assert f"({page})" in readme, f"README.md does not link {page}"
    assert "bash setup.sh && .venv/bin/python -m pytest" in readme  # CI runs this line (.ci/run)


def test_the_dpo_recipe_runs_as_written(tmp_path, tiny_model_path):
    """docs/dpo-on-your-own-trajectories.md's commands, in a copy of the repository's scripts, with
    the tiny model instead of the bundled one: pairs are made and a DPO model is saved."""
    script = re.search(r"```bash\n(.*?)```", read("docs/dpo-on-your-own-trajectories.md"), re.S).group(1)
    assert "models/SmolLM2-135M-Instruct" in script
    script = script.replace("models/SmolLM2-135M-Instruct", tiny_model_path)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO_ROOT,
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    for name in ("construct_preference.py", "fastchat", "eval_agent", "data"):
        os.symlink(os.path.join(REPO_ROOT, name), tmp_path / name)
    result = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 pairs -> own/pairs.json" in result.stdout
    assert os.path.isfile(tmp_path / "own" / "dpo" / "eto_training.json")
