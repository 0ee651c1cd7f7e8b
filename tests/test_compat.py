"""Unit checks of the FastChat compatibility fixes."""

from types import SimpleNamespace

import fastchat.serve  # noqa: F401  (installs the serving fixes, as FastChat's servers get them)
from fastchat.protocol.openai_api_protocol import ChatCompletionStreamResponse, DeltaMessage
from fastchat.utils import get_context_length


def test_context_length_with_transformers5_rope_dicts():
    # transformers 5 sets rope_scaling to a dict without "factor" for plain rope.
    plain = SimpleNamespace(rope_scaling={"rope_type": "default", "rope_theta": 1e5}, max_position_embeddings=8192)
    assert get_context_length(plain) == 8192
    linear = SimpleNamespace(rope_scaling={"rope_type": "linear", "factor": 2.0}, max_position_embeddings=4096)
    assert get_context_length(linear) == 8192
    assert get_context_length(SimpleNamespace(rope_scaling=None)) == 2048


def test_stream_chunks_serialise_with_pydantic2():
    chunk = ChatCompletionStreamResponse(model="m", choices=[{"index": 0, "delta": DeltaMessage(content="é"), "finish_reason": None}])
    text = chunk.json(exclude_unset=True, ensure_ascii=False)
    assert '"content": "é"' in text and '"model": "m"' in text
