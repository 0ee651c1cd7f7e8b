"""The machinery of run_eto.sh, one command per call (every call but ``setup`` reads the run's
settings from ``$ETO_RUN_SETTINGS``, which run_eto.sh sets):

    python -m eto.pipeline setup --out DIR -- ARGS...     # run_eto.sh's arguments -> settings
    python -m eto.pipeline lock FD SETTINGS_JSON          # one run per experiment
    python -m eto.pipeline stage NAME [--serve MODEL] [--parts N] [--given FILE] [KEY=VALUE ...] -- COMMAND...
    python -m eto.pipeline keep TRAIN_STAGE EVAL_STAGE ROW MODEL [KEY=VALUE ...]
    python -m eto.pipeline empty FILE                     # exit 0 if the JSON list in FILE is empty
    python -m eto.pipeline path episodes|model|pairs ...  # the run's file names
    python -m eto.pipeline method NAME                    # another method's plan (methods.py)
    python -m eto.pipeline finish FINAL_MODEL             # servers stopped, report printed

Exit status: 0, 1 (a failed stage; ``empty``: not empty), 2 (bad input, said in one line), 3 (``stages.RESTART``: the
run starts again from the top), 128 + N (signal N).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional, Sequence

from eto.pipeline.settings import SettingsError


def _facts(items: Sequence[str]) -> Dict[str, str]:
    bad = [item for item in items if "=" not in item]
    if bad:
        raise SettingsError(f"facts are KEY=VALUE, not {bad[0]!r}")
    return dict(item.split("=", 1) for item in items)


def _run():
    from eto.pipeline.settings import read_settings
    from eto.pipeline.stages import Run

    return Run(read_settings())


def cmd_stage(argv: List[str]) -> int:
    if "--" not in argv:
        raise SettingsError("stage: give the command after --")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m eto.pipeline stage")
    parser.add_argument("name")
    parser.add_argument("--serve", default=None, help="serve this model first")
    parser.add_argument("--parts", type=int, default=1, help="run the command this many times at once, each on its part")
    parser.add_argument("--given", default=None, help="the file the stage makes: used as it is if a user gave it")
    parser.add_argument("facts", nargs="*", help="KEY=VALUE facts for the stage's marker")
    args = parser.parse_intermixed_args(argv[:split])
    command = argv[split + 1:]
    if not command:
        raise SettingsError(f"stage {args.name}: no command after --")
    _run().stage(args.name, command, _facts(args.facts), serve=args.serve, parts=args.parts, given=args.given)
    return 0


def cmd_keep(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m eto.pipeline keep")
    for name in ("train_stage", "eval_stage", "row", "model"):
        parser.add_argument(name)
    parser.add_argument("facts", nargs="*")
    args = parser.parse_intermixed_args(argv)
    _run().keep(args.train_stage, args.eval_stage, args.row, args.model, _facts(args.facts))
    return 0


def cmd_path(argv: List[str]) -> int:
    from eto.pipeline.settings import read_settings

    paths = read_settings().paths
    kind, rest = (argv[0], argv[1:]) if argv else ("", [])
    makers = {"episodes": lambda model, suffix: paths.episodes(model, suffix),
              "model": lambda kind, round_="0": paths.model(kind, int(round_)),
              "pairs": paths.pairs, "rft_data": paths.rft_data}
    if kind not in makers:
        raise SettingsError(f"path: give one of {', '.join(makers)}")
    try:
        print(makers[kind](*rest))
    except TypeError:
        raise SettingsError(f"path {kind}: wrong arguments {rest}") from None
    return 0


def cmd_empty(argv: List[str]) -> int:
    from eto.pipeline.rules import no_records

    if len(argv) != 1:
        raise SettingsError("empty: give one file")
    return 0 if no_records(argv[0]) else 1


def cmd_method(argv: List[str]) -> int:
    from eto.pipeline.methods import PLANS

    if len(argv) != 1 or argv[0] not in PLANS:
        raise SettingsError(f"method: give one of {', '.join(PLANS)}")
    run = _run()
    final = PLANS[argv[0]](run)
    from eto.io import write_text_atomic

    write_text_atomic(run.paths.final_model, final)
    return 0


def cmd_finish(argv: List[str]) -> int:
    from eto.pipeline import servers

    run = _run()
    final = argv[0] if argv else None
    if final is None:  # a method's plan wrote it
        with open(run.paths.final_model, encoding="utf-8") as f:
            final = f.read().strip()
    servers.stop(run.settings)
    run.build_report()
    paths = run.paths
    print()
    with open(paths.report + ".md", encoding="utf-8") as f:
        print(f.read(), end="")
    compare = os.path.join(paths.log_dir, "compare.md")
    if os.path.isfile(compare):
        with open(compare, encoding="utf-8") as f:
            print("\n" + f.read(), end="")
    log = paths.log_dir
    print(f"report: {log}/report.md, {log}/report.png; methods: {log}/compare.md, {log}/compare.png; "
          f"episodes and pairs: {log}/view.html; final model: {final}")
    return 0


def cmd_stop(argv: List[str]) -> int:
    from eto.pipeline import servers
    from eto.pipeline.settings import read_settings

    servers.stop(read_settings())
    return 0


def cmd_lock(argv: List[str]) -> int:
    from eto.pipeline.lock import hold
    from eto.pipeline.settings import RunSettings
    from eto.io import read_json

    if len(argv) != 2 or not argv[0].isdigit():
        raise SettingsError("lock: give the lock file's descriptor and the settings file")
    settings = RunSettings.from_json(read_json(argv[1], "run settings file"))
    hold(int(argv[0]), settings)
    print(settings.summary())
    return 0


def cmd_setup(argv: List[str]) -> int:
    from eto.pipeline.setup import setup

    if "--" not in argv:
        raise SettingsError("setup: give run_eto.sh's arguments after --")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m eto.pipeline setup")
    parser.add_argument("--out", required=True, help="folder for settings.json and settings.bash")
    parser.add_argument("--caller_dir", default=os.getcwd(), help="where run_eto.sh was run from")
    args = parser.parse_args(argv[:split])
    setup(argv[split + 1:], args.out, args.caller_dir)
    return 0


COMMANDS = {"setup": cmd_setup, "lock": cmd_lock, "stage": cmd_stage, "keep": cmd_keep, "path": cmd_path,
            "empty": cmd_empty, "method": cmd_method, "finish": cmd_finish, "stop": cmd_stop}


def main(argv: Optional[Sequence[str]] = None) -> int:
    from eto.io import DataError
    from eto.processes import end_with_parent

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    driver = os.environ.get("ETO_DRIVER_PID", "")
    if driver.isdigit():
        end_with_parent(int(driver))  # a SIGKILL of run_eto.sh ends this call too
    from eto.pipeline.stages import Interrupted, Restart, RESTART, StageError, raise_on_signals
    from eto.pipeline.servers import ServerError

    raise_on_signals()
    try:
        return COMMANDS[argv[0]](argv[1:])
    except (SettingsError, DataError, ServerError) as error:
        print(f"run_eto.sh: {error}", file=sys.stderr)
        return 2
    except StageError as error:
        print(str(error), file=sys.stderr)
        return 1
    except Restart:
        return RESTART
    except Interrupted as stop:
        return 128 + stop.signum


if __name__ == "__main__":
    sys.exit(main())
