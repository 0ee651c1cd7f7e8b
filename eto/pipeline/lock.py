"""One run per experiment. run_eto.sh opens ``<log_dir>/.lock`` on a descriptor and ``hold`` takes
an exclusive lock on it: the lock belongs to the open file, which run_eto.sh keeps open, so it
lasts exactly as long as that process, however it ends (SIGKILL included). A second run of the
same experiment is refused, before it writes anything there."""

from __future__ import annotations

import fcntl
import os

from eto.pipeline.settings import RunSettings, SettingsError, write_json


def hold(fd: int, settings: RunSettings) -> None:
    """Lock the experiment through ``fd`` (a descriptor of its lock file, inherited from the
    driver), then start its run: its settings go into the log folder, and no model of an earlier
    start is remembered as missing (``stages.Run.ensure_model``)."""
    paths = settings.paths
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SettingsError(f"experiment '{settings.exp}' is already running (another run_eto.sh holds {paths.lock}); "
                            "wait for it or stop it") from None
    except OSError as error:
        raise SettingsError(f"cannot lock {paths.lock}: {error}") from None
    if os.path.realpath(f"/proc/self/fd/{fd}") != os.path.realpath(paths.lock) and os.path.exists(f"/proc/self/fd/{fd}"):
        raise SettingsError(f"descriptor {fd} is not {paths.lock}")
    os.makedirs(paths.stages_dir, exist_ok=True)
    write_json(settings, paths.settings)
    try:
        os.remove(paths.remake)
    except FileNotFoundError:
        pass
