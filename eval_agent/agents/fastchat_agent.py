"""A policy served by FastChat: the controller picks a worker, the worker streams the reply.

The prompt is built with the conversation template the worker reports (compiled from the model
folder's chat template, see ``eto/chat_format.py``), so it is exactly the text SFT trains on.
Before generating, the prompt is measured with the worker's tokenizer: if prompt plus reply would
not fit in the context window, ``ContextLimitExceeded`` ends the episode (the original ETO's
"exceeding maximum input length"), rather than letting the worker silently cut the prompt's start.
"""

from __future__ import annotations

import json
import threading
import time
from typing import List

import requests

from eval_agent.agents.base import Agent, ContextLimitExceeded, Message, Reply, RetryableError, SetupError
from eto.chat_format import conversation_from_dict, fill_conversation, prompt_of


def stop_strings(template_stop, extra: List[str]) -> List[str]:
    """The template's stop string(s) and the configured ones, each once, in order."""
    own = [template_stop] if isinstance(template_stop, str) else list(template_stop or [])
    return list(dict.fromkeys(s for s in own + extra if s))


class FastChatAgent(Agent):
    def __init__(self, config: dict, model_name: str):
        super().__init__(config, model_name)
        self.controller = config["controller_address"].rstrip("/")
        self._lock = threading.Lock()
        self._template = None
        self._context_length = 0

    def check(self) -> None:
        try:
            models = self._post(self.controller + "/list_models", {}, timeout=5).json()["models"]
        except (requests.RequestException, ValueError, KeyError) as error:
            raise SetupError(f"no FastChat controller answers at {self.controller} ({type(error).__name__}); start one "
                             "with: python -m fastchat.serve.controller (or python -m fastchat.launch)") from None
        if self.model_name not in models:
            raise SetupError(
                f"no worker serves model {self.model_name!r} at {self.controller} (it serves: "
                f"{', '.join(models) or 'nothing'}); start one with: python -m fastchat.serve.model_worker "
                f"--model-path <the model folder, named {self.model_name}> --controller-address {self.controller}")

    def _post(self, url: str, payload: dict, **kwargs) -> requests.Response:
        resp = requests.post(url, json=payload, timeout=kwargs.pop("timeout", 30), **kwargs)
        resp.raise_for_status()
        return resp

    def _connect(self, refresh: bool) -> str:
        """A worker for this request, as the controller dispatches (shortest queue first), so that
        the episodes in flight spread over every worker serving the model, on any host."""
        with self._lock:
            if refresh:  # drop dead workers from the controller's table before asking again
                self._post(self.controller + "/refresh_all_workers", {})
            worker = self._post(self.controller + "/get_worker_address", {"model": self.model_name}).json()["address"]
            if not worker:
                raise RetryableError(f"no worker serves model {self.model_name!r} at {self.controller}")
            if self._template is None:  # every worker of one model serves the same template
                self._template = conversation_from_dict(self._post(worker + "/worker_get_conv_template", {}).json()["conv"])
                self._context_length = int(self._post(worker + "/model_details", {"model": self.model_name}).json()["context_length"])
            return worker

    def _attempt(self, messages: List[Message], attempt: int) -> Reply:
        start = time.perf_counter()
        worker = self._connect(refresh=attempt > 0)
        conv = fill_conversation(self._template.copy(), messages)
        prompt = prompt_of(conv)
        n_tokens = self._post(worker + "/count_token", {"model": self.model_name, "prompt": prompt}).json()["count"]
        if n_tokens + self.max_new_tokens > self._context_length:
            raise ContextLimitExceeded(
                f"prompt of {n_tokens} tokens + {self.max_new_tokens} new tokens > context {self._context_length}")
        prompt_done = time.perf_counter()
        params = {
            "model": self.model_name, "prompt": prompt, "temperature": self.temperature, "top_p": self.top_p,
            "max_new_tokens": self.max_new_tokens, "stop": stop_strings(conv.stop_str, self.stop),
            "stop_token_ids": conv.stop_token_ids,
            "echo": False,
        }
        text = None
        with self._post(worker + "/worker_generate_stream", params, stream=True, timeout=self.timeout) as resp:
            for chunk in resp.iter_lines(delimiter=b"\0"):
                if not chunk:
                    continue
                data = json.loads(chunk.decode("utf-8"))
                if data.get("error_code", 0) != 0:
                    raise RetryableError(f"worker error {data['error_code']}: {data.get('text', '')[:200]}")
                text = data["text"]
        if text is None:
            raise RetryableError("the worker streamed no output")
        return Reply(text.strip(), {"prompt_s": prompt_done - start, "generate_s": time.perf_counter() - prompt_done})
