"""A policy behind any OpenAI-compatible ``/v1/chat/completions`` endpoint.

Works with FastChat's ``openai_api_server``, vLLM and hosted APIs. The key is read from the
environment variable named in the config (``api_key_env``) and is sent only in the request
header; it is never logged or written into outputs.
"""

from __future__ import annotations

import os
import time
from typing import List

import requests

from eval_agent.agents.base import Agent, ContextLimitExceeded, Message, Reply, RetryableError, SetupError

CONTEXT_ERROR_HINTS = ("context length", "context_length", "maximum context", "too long")


class OpenAIAgent(Agent):
    def __init__(self, config: dict, model_name: str):
        super().__init__(config, model_name)
        self.url = config["api_base"].rstrip("/") + "/chat/completions"
        self._key_env = config.get("api_key_env", "OPENAI_API_KEY")

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIAgent(url={self.url!r}, model={self.model_name!r}, key from ${self._key_env})"

    def check(self) -> None:
        # Any HTTP answer will do: not every provider lists its models at /models.
        try:
            resp = requests.get(self.url.rsplit("/chat/completions", 1)[0] + "/models", headers=self._headers(), timeout=5)
        except requests.RequestException as error:
            raise SetupError(f"no API answers at {self.url} ({type(error).__name__})") from None
        try:
            listed = [m["id"] for m in resp.json()["data"]] if resp.ok else None
        except (ValueError, KeyError, TypeError):
            listed = None
        if listed is not None and self.model_name not in listed:
            raise SetupError(f"the API at {self.url} does not serve model {self.model_name!r} (it serves: "
                             f"{', '.join(listed[:10]) or 'nothing'})")

    def _headers(self) -> dict:
        key = os.environ.get(self._key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _attempt(self, messages: List[Message], attempt: int) -> Reply:
        headers = self._headers()
        start = time.perf_counter()
        body = {"model": self.model_name, "messages": messages, "temperature": self.temperature,
                "top_p": self.top_p, "max_tokens": self.max_new_tokens}
        if self.stop:
            body["stop"] = self.stop
        resp = requests.post(self.url, headers=headers, timeout=self.timeout, json=body)
        if resp.status_code == 400 and any(h in resp.text.lower() for h in CONTEXT_ERROR_HINTS):
            raise ContextLimitExceeded(resp.text[:300])
        if resp.status_code >= 500 or resp.status_code == 429:
            raise RetryableError(f"HTTP {resp.status_code} from {self.url}")
        resp.raise_for_status()
        body = resp.json()
        if "choices" not in body:  # FastChat reports errors with HTTP 200 and an error body
            message = str(body.get("message", body))[:300]
            if any(h in message.lower() for h in CONTEXT_ERROR_HINTS):
                raise ContextLimitExceeded(message)
            raise RetryableError(message)
        text = body["choices"][0]["message"]["content"] or ""
        return Reply(text.strip(), {"generate_s": time.perf_counter() - start})
