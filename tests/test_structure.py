"""How the code is put together: one home per concept, imports without side effects, scripts that
run from anywhere (the project is installed with `pip install -e .`)."""

import ast
import glob
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = [p for p in glob.glob(os.path.join(REPO_ROOT, "**", "*.py"), recursive=True)
           if not os.path.relpath(p, REPO_ROOT).startswith((".venv", "tests", "build"))]


def _imports(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def _calls(path, attribute):
    tree = ast.parse(open(path, encoding="utf-8").read())
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == attribute]


def test_files_are_renamed_into_place_in_one_place():
    users = {os.path.relpath(p, REPO_ROOT) for p in SOURCES if _calls(p, "replace") and "os.replace" in open(p).read()}
    assert users == {os.path.join("eto", "io.py")}


def test_the_harness_never_imports_the_trainers():
    harness = glob.glob(os.path.join(REPO_ROOT, "eval_agent", "**", "*.py"), recursive=True)
    offenders = [(p, m) for p in harness for m in _imports(p) if m.startswith("fastchat.train")]
    assert offenders == []


def test_no_script_edits_sys_path():
    assert [p for p in SOURCES if "sys.path.insert" in open(p, encoding="utf-8").read()] == []


def test_importing_fastchat_and_the_chat_format_changes_nothing(tmp_path):
    code = ("import os, sys; finders = list(sys.meta_path); "
            "import fastchat, fastchat.launch, eto.chat_format, eto.records; "
            "print(sys.meta_path == finders, 'LOGDIR' in os.environ)")
    env = {k: v for k, v in os.environ.items() if k != "LOGDIR"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
    # Where FastChat's servers are imported, the fixes are installed.
    code = "import sys; import fastchat.serve; print(any(type(f).__name__ == '_PatchFinder' for f in sys.meta_path))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_scripts_and_commands_run_from_any_folder(tmp_path):
    for command in ([sys.executable, os.path.join(REPO_ROOT, "fastchat", "train", "train.py"), "--help"],
                    [sys.executable, os.path.join(REPO_ROOT, "fastchat", "train", "train_dpo.py"), "--help"],
                    [sys.executable, os.path.join(REPO_ROOT, "fastchat", "train", "train_ppo.py"), "--help"],
                    [sys.executable, os.path.join(REPO_ROOT, "scripts", "make_splits.py"), "--help"],
                    [sys.executable, os.path.join(REPO_ROOT, "construct_rft_data.py"), "--help"],
                    [sys.executable, os.path.join(REPO_ROOT, "construct_selfplay_pairs.py"), "--help"],
                    [sys.executable, os.path.join(REPO_ROOT, "scripts", "fuzz_envs.py"), "--help"],
                    [sys.executable, os.path.join(REPO_ROOT, "scripts", "publish_results.py"), "--help"],
                    [os.path.join(os.path.dirname(sys.executable), "eto-pairs"), "--help"],
                    [os.path.join(os.path.dirname(sys.executable), "eto-eval"), "--help"]):
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (command, result.stderr[-1500:])
        assert "usage" in result.stdout.lower()


def test_run_eto_sh_is_a_readable_sequence_of_its_stages_commands():
    """The driver holds the sequence and each ETO stage's real command; the machinery is
    eto/pipeline/ (no stored command is run again through eval)."""
    import re

    script = open(os.path.join(REPO_ROOT, "run_eto.sh"), encoding="utf-8").read()
    assert len(script.splitlines()) <= 200
    assert not re.search(r"(^|[\s;&|(])eval\s", script)
    for command in ("fastchat/train/train.py", "python -m eval_agent.main", "python construct_preference.py",
                    "fastchat/train/train_dpo.py"):
        assert command in script
