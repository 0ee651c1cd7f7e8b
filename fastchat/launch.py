"""Start FastChat servers as child processes and wait until they are really up.

Used by the tests and by the ETO loop; each server is the stock FastChat module, run with
``python -m`` from the repo root so this repo's compatibility fixes apply. Readiness is
polled over HTTP (the worker counts as ready once the controller lists its model), never
guessed with a sleep. ``FastChatServers`` stops everything it started, even on errors.

Two engines serve the model (``--engine``):
- ``vllm``: FastChat's vLLM worker (``fastchat/serve/vllm_worker.py``), which batches the
  requests in flight: many episodes advance per forward pass. The default where vLLM runs.
- ``hf``: FastChat's ``model_worker`` (Hugging Face transformers), one request at a time, as the
  original ETO served. The default where vLLM is not installed or cannot run on the machine.

    with FastChatServers("models/SmolLM2-135M-Instruct", api_server=True) as servers:
        print(servers.controller_url, servers.api_url)

From the shell: ``python -m fastchat.launch --ask "What is the capital of France?"``.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import List, Optional, Sequence

import requests

from eto.engines import ENGINES, has_cuda, resolve_engine
from eto.processes import exit_with, stop_with_parent

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "127.0.0.1"
WORKER_MODULES = {"vllm": "fastchat.serve.vllm_worker", "hf": "fastchat.serve.model_worker"}


class ServerError(RuntimeError):
    """A server exited or did not become ready in time."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def model_name_of(model_path: str) -> str:
    """The name FastChat registers a worker under: the folder's basename."""
    return os.path.basename(os.path.normpath(model_path))


class FastChatServers:
    """A controller, ``num_workers`` model workers and optionally the OpenAI API server."""

    def __init__(
        self,
        model_path: str,
        *,
        num_workers: int = 1,
        api_server: bool = False,
        device: Optional[str] = None,
        torch_threads: Optional[int] = None,
        log_dir: Optional[str] = None,
        ready_timeout: float = 300.0,
        controller_port: Optional[int] = None,
        engine: str = "hf",
        worker_args: Sequence[str] = (),
    ):
        self.model_path = model_path
        self.engine = resolve_engine(engine)
        self.worker_args = list(worker_args)
        self.model_name = model_name_of(model_path)
        self.num_workers = num_workers
        self.api_server = api_server
        self.device = device or ("cuda" if has_cuda() else "cpu")
        self.torch_threads = torch_threads
        self.log_dir = log_dir or tempfile.mkdtemp(prefix="fastchat-logs-")
        self.ready_timeout = ready_timeout
        self.processes: List[subprocess.Popen] = []
        self.controller_url = f"http://{HOST}:{controller_port or free_port()}"
        self.worker_urls: List[str] = []
        self.api_url: Optional[str] = None
        self._specs: dict = {}  # name -> (module args, readiness check, GPU): how to start it again
        self.restarts: dict = {}

    # -------------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> "FastChatServers":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        port = int(self.controller_url.rsplit(":", 1)[1])
        controller = self._spawn("controller", ["fastchat.serve.controller", "--host", HOST, "--port", str(port)],
                                 ready=lambda: requests.post(self.controller_url + "/list_models", timeout=5).ok)
        self._wait(controller)
        workers = []
        for i in range(self.num_workers):
            port = free_port()
            url = f"http://{HOST}:{port}"
            self.worker_urls.append(url)
            args = [WORKER_MODULES[self.engine], "--model-path", self.model_path, "--host", HOST, "--port", str(port),
                    "--worker-address", url, "--controller-address", self.controller_url]
            if self.engine == "hf":  # vLLM finds its device itself
                args += ["--device", self.device]
            # A worker registers with the controller before its HTTP server starts, so a worker
            # that answers is registered; the controller listing the model confirms it (below).
            workers.append(self._spawn(f"worker{i}", args + self.worker_args,
                                       ready=lambda url=url: requests.post(url + "/worker_get_status", timeout=5).ok,
                                       gpu=_device_for_worker(i) if self.device == "cuda" else None))
        for proc in workers:
            self._wait(proc)
        self._wait(controller, lambda: self.model_name in self.list_models())
        if self.api_server:
            port = free_port()
            self.api_url = f"http://{HOST}:{port}"
            api = self._spawn("api_server", [
                "fastchat.serve.openai_api_server", "--host", HOST, "--port", str(port),
                "--controller-address", self.controller_url,
            ], ready=lambda: requests.get(self.api_url + "/v1/models", timeout=5).ok)
            self._wait(api)

    def revive(self, max_restarts: int = 3) -> List[str]:
        """Start again, on the same address, every server that has exited (a worker killed for
        memory, a crash), up to ``max_restarts`` times each; returns what was restarted. Clients
        ride out the gap with their retries; a restarted controller gets its workers back at their
        next heartbeat. Raises ``ServerError`` when a server keeps dying."""
        restarted = []
        for i, proc in enumerate(self.processes):
            if proc.poll() is None:
                continue
            name = proc.name  # type: ignore[attr-defined]
            self.restarts[name] = self.restarts.get(name, 0) + 1
            if self.restarts[name] > max_restarts:
                raise ServerError(f"{name} exited with code {proc.returncode} after {max_restarts} restarts: {self._tail(name)}")
            args, ready, gpu = self._specs[name]
            new = self._spawn(name, args, ready=ready, gpu=gpu)
            self.processes[i] = self.processes.pop()  # in the dead one's place: stop() goes in reverse start order
            self._wait(new)
            restarted.append(f"{name} (exit code {proc.returncode}; restart {self.restarts[name]} of {max_restarts})")
        return restarted

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 10
        for proc in self.processes:
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.processes.clear()

    # --------------------------------------------------------------------------------- queries
    def list_models(self) -> List[str]:
        return requests.post(self.controller_url + "/list_models", timeout=5).json()["models"]

    def log_path(self, name: str) -> str:
        return os.path.join(self.log_dir, f"{name}.log")

    # -------------------------------------------------------------------------------- helpers
    def pids(self) -> dict:
        return {proc.name: proc.pid for proc in self.processes}  # type: ignore[attr-defined]

    def _spawn(self, name: str, module_args: List[str], ready, gpu: Optional[str] = None) -> subprocess.Popen:
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
        if self.torch_threads and self.engine == "hf":  # vLLM sets its threads itself (vllm_worker.py)
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.torch_threads)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        os.makedirs(self.log_dir, exist_ok=True)
        log = open(self.log_path(name), "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", *module_args], cwd=REPO_ROOT, env=env,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=stop_with_parent(os.getpid()),
        )
        proc.name = name  # type: ignore[attr-defined]
        self.processes.append(proc)
        self._specs[name] = (module_args, ready, gpu)
        return proc

    def _wait(self, proc: subprocess.Popen, ready=None) -> None:
        ready = ready or self._specs[proc.name][1]  # type: ignore[attr-defined]
        deadline = time.time() + self.ready_timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                raise ServerError(f"{proc.name} exited with code {proc.returncode}: {self._tail(proc.name)}")
            try:
                if ready():
                    return
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.25)
        raise ServerError(f"{proc.name} not ready after {self.ready_timeout:.0f}s: {self._tail(proc.name)}")

    def _tail(self, name: str, lines: int = 5) -> str:
        try:
            with open(self.log_path(name), encoding="utf-8", errors="replace") as f:
                return " | ".join(f.read().strip().splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _device_for_worker(i: int) -> str:
    """Worker i's GPU among those this process may use (round-robin when workers outnumber them)."""
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if not visible:
        import torch

        visible = [str(d) for d in range(max(1, torch.cuda.device_count()))]
    return visible[i % len(visible)]


def write_ready_file(path: str, servers: FastChatServers) -> None:
    from eto.io import write_json_atomic

    write_json_atomic(path, {"engine": servers.engine, "controller_url": servers.controller_url, "api_url": servers.api_url,
                             "worker_urls": servers.worker_urls, "model_name": servers.model_name, "model_path": servers.model_path,
                             "pid": os.getpid(),
                             "server_pids": servers.pids()})


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        description="Start a FastChat controller, model worker(s) and the OpenAI API server on "
                    "127.0.0.1, wait until they are ready, then either ask one question or keep "
                    "serving until Ctrl-C.",
    )
    parser.add_argument("--model-path", default="models/SmolLM2-135M-Instruct", help="HF model folder to serve")
    parser.add_argument("--engine", choices=["auto", *ENGINES], default="auto",
                        help="vllm: FastChat's vLLM worker, batching concurrent requests; hf: FastChat's "
                             "transformers model_worker, one request at a time; auto (default): vllm where it runs, else hf")
    parser.add_argument("--worker-args", default="", metavar="ARGS",
                        help="extra flags for each worker, e.g. --worker-args='--enforce-eager --max-num-seqs 32' (vLLM)")
    parser.add_argument("--print-engine", action="store_true", help="print the engine --engine resolves to, then exit")
    parser.add_argument("--num-workers", type=int, default=1, help="model workers (one per GPU on GPU machines)")
    parser.add_argument("--device", choices=["cpu", "cuda", "mps"], help="default: cuda if available, else cpu")
    parser.add_argument("--controller-port", type=int, default=21001, help="0 picks a free port")
    parser.add_argument("--log-dir", default="logs/fastchat", help="one log file per server")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch threads per worker (use 1 when an environment runs beside it on few cores)")
    parser.add_argument("--ready-timeout", type=float, default=900.0,
                        help="seconds each server may take to come up (a vLLM worker on a busy CPU takes minutes)")
    parser.add_argument("--ready-file", default=None,
                        help="once every server is ready, write their addresses here as JSON (for scripts)")
    parser.add_argument("--exit-with", type=int, default=None, metavar="PID",
                        help="stop every server once process PID has ended, however it ended (run_eto.sh passes its own)")
    parser.add_argument("--ask", metavar="QUESTION", help="send one chat request, print the answer, stop")
    parser.add_argument("--max-tokens", type=int, default=64, help="reply length for --ask")
    args = parser.parse_args(argv)
    if args.print_engine:
        print(resolve_engine(args.engine))
        return
    if args.num_workers < 1:
        parser.error("--num-workers must be at least 1")
    if not os.path.isdir(args.model_path):
        sys.exit(f"error: --model-path {args.model_path!r} is not a folder (`bash setup.sh` creates the bundled model)")

    # SIGTERM (e.g. from run_eto.sh's trap) unwinds like Ctrl-C, so the servers started so far are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.exit_with:
        exit_with(args.exit_with)
    try:
        with FastChatServers(args.model_path, num_workers=args.num_workers, api_server=True,
                             device=args.device, log_dir=args.log_dir, torch_threads=args.torch_threads,
                             ready_timeout=args.ready_timeout,
                             controller_port=args.controller_port or None, engine=args.engine,
                             worker_args=shlex.split(args.worker_args)) as servers:
            if args.ready_file:
                write_ready_file(args.ready_file, servers)
            print(f"engine {servers.engine} | controller {servers.controller_url} | workers {' '.join(servers.worker_urls)} | "
                  f"OpenAI API {servers.api_url}/v1 | model {servers.model_name} | logs {args.log_dir}/", flush=True)
            if args.ask:
                resp = requests.post(servers.api_url + "/v1/chat/completions", timeout=600, json={
                    "model": servers.model_name, "temperature": 0, "max_tokens": args.max_tokens,
                    "messages": [{"role": "user", "content": args.ask}],
                })
                resp.raise_for_status()
                print(f"Q: {args.ask}\nA: {resp.json()['choices'][0]['message']['content']}")
                return
            print("Serving; press Ctrl-C to stop.", flush=True)
            while True:
                time.sleep(1)
                for what in servers.revive():
                    print(f"{time.strftime('%F %T')} restarted {what}", flush=True)
    except KeyboardInterrupt:
        print("stopped")
    except ServerError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
