"""FastChat's vLLM worker, run on today's vLLM: ``python -m fastchat.serve.vllm_worker --model-path M``.

The installed FastChat (fschat 0.2.36) ships ``fastchat/serve/vllm_worker.py``, written for vLLM
0.2-0.4. This module, which takes its place in ``fastchat.serve`` when run from the repo root,
loads that file unchanged under a private name, applies ``fastchat.compat.patch_vllm_worker``
(the places where it meets vLLM 0.32's API) and starts it: FastChat's ``VLLMWorker`` class, its
FastAPI app and endpoints (``/worker_generate_stream``, ``/count_token``, ``/model_details``, ...)
and its registration with the controller are all FastChat's own. What is ours is the start-up
below, in place of the file's ``__main__`` block (which vLLM 0.32 cannot run): the flags, with
127.0.0.1 and this project's dtype default, one clear line for a bad ``--model-path``, and the
engine handed to the worker.

Every vLLM engine flag is accepted as well (``--dtype``, ``--max-num-seqs``,
``--enable-prefix-caching``, ``--tensor-parallel-size``, ...; ``--help`` lists them).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import time
from types import ModuleType, SimpleNamespace

import fastchat.serve
from fastchat import compat
from eto.engines import CPU_KV_CACHE_BYTES, default_dtype, has_cuda

HOST = compat.LOOPBACK


def installed_worker_path() -> str:
    """The installed FastChat's ``vllm_worker.py`` (this file shadows it in ``fastchat.serve``)."""
    here = os.path.abspath(__file__)
    for folder in fastchat.serve.__path__:
        candidate = os.path.abspath(os.path.join(folder, "vllm_worker.py"))
        if candidate != here and os.path.isfile(candidate):
            return candidate
    raise SystemExit("error: the installed FastChat has no fastchat/serve/vllm_worker.py (pip install fschat==0.2.36)")


def load_fastchat_worker() -> ModuleType:
    """Import FastChat's worker module under a private name and patch it for today's vLLM."""
    name = "fastchat.serve._fschat_vllm_worker"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, installed_worker_path())
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    compat.patch_vllm_worker(module)
    return module


def vllm_version() -> str:
    import vllm

    return vllm.__version__


def exit_when_engine_dies(engine, poll_s: float = 2.0) -> None:
    """A dead engine fails every request while the worker keeps answering heartbeats, so the
    controller would keep routing to it; stop instead, and let the controller drop it."""
    import threading

    def watch() -> None:
        while not engine.errored:
            time.sleep(poll_s)
        print("error: the vLLM engine died (see the log above); stopping this worker", file=sys.__stderr__, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="engine-watchdog", daemon=True).start()


def build_parser():
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(
        description="FastChat model worker on vLLM: registers with the controller and serves "
                    "many requests at once, batched by vLLM.")
    fastchat_args = parser.add_argument_group("FastChat worker")
    fastchat_args.add_argument("--host", default=HOST)
    fastchat_args.add_argument("--port", type=int, default=21002)
    fastchat_args.add_argument("--worker-address", default=f"http://{HOST}:21002")
    fastchat_args.add_argument("--controller-address", default=f"http://{HOST}:21001")
    fastchat_args.add_argument("--model-path", default=None, help="HF model folder to serve (required)")
    fastchat_args.add_argument("--model-names", type=lambda s: s.split(","),
                               help="names to register under, comma-separated (default: the folder's name)")
    fastchat_args.add_argument("--limit-worker-concurrency", type=int, default=1024,
                               help="requests admitted at once; vLLM batches them")
    fastchat_args.add_argument("--no-register", action="store_true")
    fastchat_args.add_argument("--num-gpus", type=int, default=1, help="tensor-parallel GPUs")
    fastchat_args.add_argument("--conv-template", default=None,
                               help="FastChat conversation template (default: compiled from the folder's chat template)")
    AsyncEngineArgs.add_cli_args(parser)
    return parser


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    model_path = args.model_path
    reason = compat.model_folder_problem(model_path)
    if reason:
        sys.exit(f"error: cannot load --model-path {model_path!r}: {reason}")
    args.model = model_path
    if args.num_gpus > 1:
        args.tensor_parallel_size = args.num_gpus
    on_gpu = has_cuda()
    if args.dtype == "auto":
        args.dtype = default_dtype(on_gpu)
    if not on_gpu:
        if not any(a.lstrip("-").replace("_", "-").endswith("enforce-eager") for a in argv):
            # torch.compile made no measurable difference in throughput here (docs/serving.md, "Engines")
            # but adds about a minute to every start.
            args.enforce_eager = True
        if os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "auto") == "auto":
            # vLLM pins its own OpenMP threads (a compute core per worker, a core kept for its
            # scheduler); an inherited OMP_NUM_THREADS=2 on 2 cores made it 28x slower here (7.6
            # against 211 requests/min), so its own setting wins.
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ.pop(name, None)
            # ... but not its reserved scheduler core: on 2 cores it computes on one core and keeps
            # the other idle; computing on both explored 10.4 episodes/min against 8.1 (docs/serving.md).
            os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        if args.kv_cache_memory_bytes is None:  # not 92% of the machine (eto.engines)
            args.kv_cache_memory_bytes = CPU_KV_CACHE_BYTES

    from vllm.engine.arg_utils import AsyncEngineArgs

    fastchat_worker = load_fastchat_worker()
    engine = fastchat_worker.AsyncLLMEngine.from_engine_args(AsyncEngineArgs.from_cli_args(args))
    # FastChat's worker reads the tokenizer and model config through ``engine.engine``, where the
    # vLLM 0.2 engine kept them.
    engine_view = SimpleNamespace(engine=SimpleNamespace(tokenizer=engine.tokenizer, model_config=engine.model_config))
    fastchat_worker.engine = engine
    fastchat_worker.worker = fastchat_worker.VLLMWorker(
        args.controller_address, args.worker_address, fastchat_worker.worker_id, model_path,
        args.model_names, args.limit_worker_concurrency, args.no_register, engine_view, args.conv_template,
    )
    print(f"engine: vLLM {vllm_version()} ({args.dtype}) serving {model_path}", flush=True)
    exit_when_engine_dies(engine)
    import uvicorn

    # uvicorn re-raises SIGTERM once it has shut down; as SystemExit it lets ``finally`` run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(fastchat_worker.app, host=args.host, port=args.port, log_level="info")
    finally:  # vLLM's engine processes outlive this one unless told to stop
        engine.shutdown()


if __name__ == "__main__":
    main()
