"""FastChat's servers (``python -m fastchat.serve.controller``, ``.model_worker``,
``.openai_api_server``, ...) from the installed FastChat, with this repo's compatibility fixes
(``fastchat.compat``: transformers 5, pydantic 2, chat-template conversations, loopback binding)
installed before any of them is imported. ``.vllm_worker`` is this repo's module: it starts the
installed FastChat's vLLM worker on today's vLLM (see its docstring).
"""

import pkgutil

__path__ = pkgutil.extend_path(__path__, __name__)

from fastchat import compat as _compat  # noqa: E402

_compat.install()
