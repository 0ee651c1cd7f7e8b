"""Fixes that make FastChat 0.2.36 work on transformers 5 / pydantic 2, plus our defaults.

Each fix is attached to the FastChat module it changes and runs right after that module is
first imported (a post-import hook), so ``python -m fastchat.serve.controller`` does not pay
for importing torch, and modules that do ``from fastchat.utils import get_context_length``
bind the fixed function. They are installed by this repo's ``fastchat/serve/__init__.py``, i.e.
wherever FastChat's servers are imported; importing ``fastchat`` alone changes nothing.

The fixes:
- ``fastchat.utils.get_context_length``: transformers 5 always sets ``config.rope_scaling`` to
  a dict, often without ``factor`` (FastChat indexed it and crashed with ``KeyError``).
- ``fastchat.protocol.openai_api_protocol``: streaming called pydantic-1 style
  ``.json(ensure_ascii=False)``, which pydantic 2 rejects.
- ``fastchat.model.model_adapter``: a model folder that carries a chat template gets a
  conversation template compiled from it (``eto.chat_format``), instead of FastChat's
  guess from the folder name; a bad ``--model-path`` exits with one line.
- ``fastchat.conversation``: conversations compiled from a chat template render through it.
- ``fastchat.serve.vllm_worker`` (``patch_vllm_worker``, applied by this repo's
  ``fastchat/serve/vllm_worker.py``): FastChat's vLLM worker on vLLM 0.32.
- ``uvicorn``: FastChat's servers default to ``--host localhost``; we bind 127.0.0.1 exactly.
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata
import json
import os
import sys
from typing import Callable, Dict, Optional

LOOPBACK = "127.0.0.1"


def installed_fastchat_version() -> str:
    try:
        return importlib.metadata.version("fschat")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------- post-import hook machinery


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader, patch: Callable):
        self._loader = loader
        self._patch = patch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._patch(module)


class _PatchFinder(importlib.abc.MetaPathFinder):
    def __init__(self, patches: Dict[str, Callable]):
        self.patches = patches

    def find_spec(self, fullname, path, target=None):
        patch = self.patches.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader, patch)
                return spec
        return None


# ---------------------------------------------------------------------------------- the fixes


def _patch_utils(utils) -> None:
    def get_context_length(config) -> int:
        """Context length from an HF config, tolerant of transformers 5 rope dicts."""
        scaling = getattr(config, "rope_scaling", None) or {}
        factor = 1
        # Only linear/dynamic scaling stretches max_position_embeddings; llama3/yarn configs
        # already report the extended length.
        if isinstance(scaling, dict) and scaling.get("rope_type", scaling.get("type")) in (
            "linear",
            "dynamic",
        ):
            factor = scaling.get("factor") or 1
        for key in utils.SEQUENCE_LENGTH_KEYS:
            value = getattr(config, key, None)
            if value is not None:
                return int(factor * value)
        return 2048

    utils.get_context_length = get_context_length


def _patch_protocol(protocol) -> None:
    from pydantic import BaseModel

    def to_json(self, *, ensure_ascii: bool = True, **dump_kwargs) -> str:
        return json.dumps(self.model_dump(mode="json", **dump_kwargs), ensure_ascii=ensure_ascii)

    for value in vars(protocol).values():
        if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel:
            value.json = to_json


def _patch_conversation(conversation) -> None:
    from eto import chat_format

    original = conversation.Conversation.get_prompt

    def get_prompt(self) -> str:
        if chat_format.is_compiled(self):
            return chat_format.render_conversation(self)
        return original(self)

    conversation.Conversation.get_prompt = get_prompt


def _patch_model_adapter(adapter) -> None:
    from eto import chat_format

    original_template = adapter.get_conversation_template
    original_load = adapter.load_model

    def get_conversation_template(model_path: str):
        if chat_format.has_chat_template(model_path):
            return chat_format.compile_conversation(model_path)
        return original_template(model_path)

    def load_model(model_path: str, *args, **kwargs):
        try:
            return original_load(model_path, *args, **kwargs)
        except (OSError, ValueError) as error:
            reason = model_folder_problem(model_path)
            if reason is None:
                reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            # FastChat's logger has replaced sys.stderr; write the line to the real one.
            print(f"error: cannot load --model-path {model_path!r}: {reason}", file=sys.__stderr__, flush=True)
            raise SystemExit(2) from None

    adapter.get_conversation_template = get_conversation_template
    adapter.load_model = load_model


def model_folder_problem(model_path) -> Optional[str]:
    """Why ``model_path`` is not a local Hugging Face model folder, or None if it looks like one."""
    if not model_path:
        return "no --model-path given"
    if not os.path.exists(model_path):
        return "no such folder, nor a model reachable on the Hugging Face Hub " \
               "(`bash setup.sh` creates models/SmolLM2-135M-Instruct)"
    if not os.path.isdir(model_path):
        return "that is a file; give the model folder"
    if not os.path.isfile(os.path.join(model_path, "config.json")):
        return "the folder has no config.json, so it is not a Hugging Face model folder"
    return None


def patch_vllm_worker(worker_module) -> None:
    """FastChat's ``vllm_worker`` module against vLLM 0.32 (its V1 engine).

    FastChat builds ``SamplingParams(use_beam_search=..., best_of=..., top_k=-1.0, ...)``: vLLM
    removed beam search from sampling (0.6) and ``best_of`` (V1), and disables top-k with 0. The
    engine and tokenizer attributes it reads are handed to it by ``fastchat/serve/vllm_worker.py``.
    """
    sampling_params_class = worker_module.SamplingParams

    def sampling_params(*, use_beam_search=False, best_of=None, top_k=-1, n=1, **kwargs):
        if use_beam_search:
            raise ValueError("beam search is not supported by the vLLM worker")
        if best_of not in (None, n):
            raise ValueError("best_of is not supported by the vLLM worker")
        top_k = int(top_k)
        return sampling_params_class(n=n, top_k=top_k if top_k > 0 else 0, **kwargs)

    worker_module.SamplingParams = sampling_params


def _patch_uvicorn(uvicorn) -> None:
    original_run = uvicorn.run

    def run(app, *args, host: str = LOOPBACK, **kwargs):
        if host == "localhost":
            host = LOOPBACK
        return original_run(app, *args, host=host, **kwargs)

    uvicorn.run = run


PATCHES: Dict[str, Callable] = {
    "fastchat.utils": _patch_utils,
    "fastchat.protocol.openai_api_protocol": _patch_protocol,
    "fastchat.conversation": _patch_conversation,
    "fastchat.model.model_adapter": _patch_model_adapter,
    "uvicorn": _patch_uvicorn,
}


def install() -> None:
    """Register the fixes; modules imported already are patched now."""
    # FastChat writes one log file per server into $LOGDIR (default: the cwd); keep them in logs/.
    if "LOGDIR" not in os.environ:
        repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        os.environ["LOGDIR"] = os.path.join(repo_root, "logs", "fastchat")
        os.makedirs(os.environ["LOGDIR"], exist_ok=True)
    if any(isinstance(f, _PatchFinder) for f in sys.meta_path):
        return
    pending = {}
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
        else:
            pending[name] = patch
    sys.meta_path.insert(0, _PatchFinder(pending))
