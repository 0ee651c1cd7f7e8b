"""The run's model servers: ``python -m fastchat.launch`` (a controller and the workers) serving one
model at a time, shared by the stages that play with it and stopped before a training.

The launcher runs detached from the stage that started it, so that the next stage on the same
model finds it up (a vLLM worker takes half a minute to start on a CPU); its ready file
(``servers.ready``) says which model it serves. It follows run_eto.sh (``--exit-with``): when the
driver ends, however it ends, the servers stop.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Optional

from eto.io import read_json_or_none
from eto.pipeline.paths import model_name
from eto.pipeline.settings import RunSettings
from eto.processes import alive, wait_gone

READY_TIMEOUT = 1800  # seconds: a vLLM worker on a busy CPU takes minutes


class ServerError(RuntimeError):
    """The servers did not come up; the message names their log."""


def _current(settings: RunSettings) -> Optional[dict]:
    """The ready file of servers that still run, or None."""
    ready = read_json_or_none(settings.paths.servers_ready)
    if isinstance(ready, dict) and isinstance(ready.get("pid"), int) and alive(ready["pid"]):
        return ready
    return None


def serving(settings: RunSettings) -> Optional[str]:
    """The model folder the run's servers serve now, if any."""
    ready = _current(settings)
    return ready.get("model_path") if ready else None


def serve(settings: RunSettings, model: str, driver_pid: Optional[int] = None) -> str:
    """Serve ``model`` (unless it is served already); returns once the controller lists it."""
    paths = settings.paths
    ready = _current(settings)
    if ready and os.path.normpath(ready.get("model_path", "")) == os.path.normpath(model):
        return ready["controller_url"]
    stop(settings)
    command = [sys.executable, "-m", "fastchat.launch", "--model-path", model, "--num-workers", str(settings.workers),
               "--controller-port", str(settings.controller_port), "--log-dir", paths.server_logs,
               "--ready-file", paths.servers_ready, "--engine", settings.engine]
    if settings.serve_threads:
        command += ["--torch-threads", str(settings.serve_threads)]
    if settings.preset.worker_args:
        command += [f"--worker-args={settings.preset.worker_args}"]
    driver_pid = driver_pid or _driver_pid()
    if driver_pid:
        command += ["--exit-with", str(driver_pid)]
    os.makedirs(paths.log_dir, exist_ok=True)
    with open(paths.servers_log, "ab") as log:
        log.write(f"==== {time.strftime('%F %T', time.gmtime())} {shlex.join(command)}\n".encode())
        log.flush()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.time() + READY_TIMEOUT
    while True:
        ready = read_json_or_none(paths.servers_ready)
        if isinstance(ready, dict) and ready.get("pid") == proc.pid:
            break
        if proc.poll() is not None:
            raise ServerError(f"the FastChat servers for {model} failed to start; see {paths.servers_log}")
        if time.time() > deadline:
            stop(settings)
            raise ServerError(f"the FastChat servers for {model} were not ready after {READY_TIMEOUT // 60} min; "
                              f"see {paths.servers_log}")
        time.sleep(0.25)
    print(f"serving {model_name(model)} at {ready['controller_url']} ({settings.workers} {settings.engine} worker(s))",
          flush=True)
    return ready["controller_url"]


def stop(settings: RunSettings) -> None:
    """Stop the run's servers, if any run, and wait until they are gone."""
    ready = read_json_or_none(settings.paths.servers_ready)
    pid = ready.get("pid") if isinstance(ready, dict) else None
    if isinstance(pid, int) and alive(pid):
        try:
            os.kill(pid, signal.SIGTERM)  # the launcher stops its servers and exits
        except ProcessLookupError:
            pass
        if not wait_gone(pid, 30):
            os.kill(pid, signal.SIGKILL)  # its servers follow it (parent-death signal)
            wait_gone(pid, 10)
    if ready is not None:
        try:
            os.remove(settings.paths.servers_ready)
        except FileNotFoundError:
            pass


def _driver_pid() -> Optional[int]:
    pid = os.environ.get("ETO_DRIVER_PID", "")
    return int(pid) if pid.isdigit() else None
