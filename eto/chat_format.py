"""One source of truth for how a model's conversations become text: its chat template.

Training (``encode_for_training``) and serving (the FastChat conversation template that the
worker reports, which the OpenAI API server and ``eval_agent`` render) both go through the
model folder's own chat template, so the prompt the policy sees at inference is exactly the
text it was trained on.

For FastChat, ``compile_conversation`` turns the chat template into a ``Conversation`` whose
name points back to the model folder; ``prompt_of`` (and, in FastChat's servers, the patched
``Conversation.get_prompt``, see ``fastchat/compat.py``) renders such conversations with the
template itself. The ordinary FastChat fields (system template, roles,
separator) are also filled in, by probing the template, so a process that cannot read the
folder still gets the same text whenever the template fits FastChat's NO_COLON_SINGLE style
(ChatML, Llama-3 with a system prompt, ...). ``compiled_fields_exact`` says whether it does.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

COMPILED_PREFIX = "chat-template:"
Message = Dict[str, str]

# Probe strings: unlikely to occur in any template, and free of Jinja/format syntax.
_SYS, _U1, _A1, _U2, _A2 = "SYS-PROBE-7f3a", "USER-PROBE-1c9e", "ASSISTANT-PROBE-5b2d", "USER-PROBE-8e4f", "ASSISTANT-PROBE-2a6c"


def has_chat_template(model_path: str) -> bool:
    """True for a local model folder whose tokenizer carries a chat template."""
    if not os.path.isdir(model_path):
        return False
    if os.path.isfile(os.path.join(model_path, "chat_template.jinja")):
        return True
    config = os.path.join(model_path, "tokenizer_config.json")
    if os.path.isfile(config):
        with open(config, encoding="utf-8") as f:
            return bool(json.load(f).get("chat_template"))
    return False


_TOKENIZER_LOCK = threading.Lock()


def load_tokenizer(model_path: str):
    # Episodes run in threads (--concurrency); transformers' lazy imports are not thread-safe
    # (two threads importing it at once got "cannot import name 'AutoTokenizer'").
    with _TOKENIZER_LOCK:
        return _load_tokenizer(os.path.abspath(model_path))


@lru_cache(maxsize=16)
def _load_tokenizer(model_path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path)


def render(tokenizer, messages: Sequence[Message], add_generation_prompt: bool = False) -> str:
    """The text of a conversation as the model sees it (including special-token text)."""
    return tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
    )


def encode_for_training(tokenizer, messages: Sequence[Message]) -> Dict[str, List[int]]:
    """Token ids of a whole conversation, and labels that keep only the assistant turns.

    The ids are those of ``render(tokenizer, messages)``. Each assistant turn is learned with
    the end-of-turn text the template writes after it (ChatML: ``<|im_end|>``; Llama-2:
    ``</s>``), so the model learns to stop. A template with ``{% generation %}`` markers says
    itself what the model's output is; for any other template, the turn is the text between
    the conversation rendered up to the turn's generation prompt and rendered through the turn.
    """
    if has_generation_markers(tokenizer):
        encoded = tokenizer.apply_chat_template(
            list(messages), tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        ids, mask = list(encoded["input_ids"]), encoded["assistant_masks"]
    else:
        ids, mask = _encode_by_prefixes(tokenizer, messages)
    return {"input_ids": ids, "labels": [t if m else -100 for t, m in zip(ids, mask)]}


def has_generation_markers(tokenizer) -> bool:
    template = tokenizer.chat_template or ""
    return "{% generation %}" in template or "{%- generation %}" in template


def _encode_by_prefixes(tokenizer, messages: Sequence[Message]) -> Tuple[List[int], List[int]]:
    text = render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], add_generation_prompt=True)
        through = render(tokenizer, messages[: i + 1])
        if not (text.startswith(through) and through.startswith(before)):
            raise ValueError("the chat template renders a conversation's start differently from the whole "
                             "conversation, so assistant turns cannot be located; add {% generation %} "
                             "markers around the assistant content")
        spans.append((len(before), len(through.rstrip())))  # the newline after the stop text is never generated
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [int(any(start <= s < end for start, end in spans)) for s, _ in encoded["offset_mapping"]]
    return list(encoded["input_ids"]), mask


def prompt_text(tokenizer, messages: Sequence[Message]) -> str:
    """The generation prompt, as the inference server will tokenize it.

    A template that writes the BOS text itself, for a tokenizer that also adds BOS on its own,
    would get it twice at inference; we drop the written one so both paths see one BOS.
    """
    text = render(tokenizer, messages, add_generation_prompt=True)
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and _tokenizer_adds_bos(tokenizer):
        text = text[len(bos):]
    return text


def _tokenizer_adds_bos(tokenizer) -> bool:
    ids = tokenizer("a").input_ids
    return bool(ids) and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id


def stop_tokens(tokenizer) -> Tuple[Optional[str], List[int]]:
    """The end-of-turn string the template writes after an assistant message, and stop ids."""
    text = render(tokenizer, [{"role": "user", "content": _U1}, {"role": "assistant", "content": _A1}])
    after = text.split(_A1, 1)[1]
    specials = sorted(set(tokenizer.all_special_tokens) | set(tokenizer.get_added_vocab()), key=len, reverse=True)
    found = [(after.find(s), s) for s in specials if s and s in after]
    stop_str = min(found)[1] if found else None
    ids = []
    if stop_str is not None:
        ids.append(tokenizer.convert_tokens_to_ids(stop_str))
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return stop_str, ids


# ------------------------------------------------------------------------ FastChat conversion


def to_messages(conv) -> Tuple[List[Message], bool]:
    """FastChat ``Conversation`` -> chat messages, and whether a reply is to be generated."""
    messages: List[Message] = []
    default_system = _template_default_system(conv)
    if conv.system_message and conv.system_message != default_system:
        messages.append({"role": "system", "content": conv.system_message})
    generate = False
    for role, content in conv.messages[conv.offset:]:
        if content is None:
            generate = True
            continue
        if isinstance(content, tuple):  # (text, images) from vision requests
            content = content[0]
        messages.append({"role": "user" if role == conv.roles[0] else "assistant", "content": content})
    return messages, generate


def is_compiled(conv) -> bool:
    return bool(conv.name) and conv.name.startswith(COMPILED_PREFIX) and os.path.isdir(_folder(conv))


def _folder(conv) -> str:
    return conv.name[len(COMPILED_PREFIX):]


def _template_default_system(conv) -> str:
    return _compiled_fields(_folder(conv))["system_message"] if is_compiled(conv) else ""


def render_conversation(conv) -> str:
    """``Conversation.get_prompt`` for a conversation compiled from a chat template."""
    tokenizer = load_tokenizer(_folder(conv))
    messages, generate = to_messages(conv)
    if generate:
        return prompt_text(tokenizer, messages)
    return render(tokenizer, messages)


def prompt_of(conv) -> str:
    """The prompt text of a FastChat conversation: through the chat template if it was compiled
    from one, else FastChat's own rendering. Needs no patched FastChat."""
    return render_conversation(conv) if is_compiled(conv) else conv.get_prompt()


def compile_conversation(model_path: str):
    """A FastChat ``Conversation`` for a model folder with a chat template."""
    from fastchat.conversation import Conversation, SeparatorStyle

    folder = os.path.abspath(model_path)
    fields = _compiled_fields(folder)
    if not fields["exact"]:
        logger.warning(
            "The chat template of %s does not fit FastChat's fixed styles; prompts render "
            "exactly only in processes that can read that folder.", folder
        )
    return Conversation(
        name=COMPILED_PREFIX + folder,
        system_template=fields["system_template"],
        system_message=fields["system_message"],
        roles=fields["roles"],
        messages=[],
        offset=0,
        sep_style=SeparatorStyle.NO_COLON_SINGLE,
        sep=fields["sep"],
        stop_str=fields["stop_str"],
        stop_token_ids=fields["stop_token_ids"],
    )


@lru_cache(maxsize=16)
def _compiled_fields(folder: str) -> dict:
    tokenizer = load_tokenizer(folder)
    stop_str, stop_ids = stop_tokens(tokenizer)
    fields = {
        "system_template": "{system_message}",
        "system_message": "",
        "roles": ("user", "assistant"),
        "sep": "\n",
        "stop_str": stop_str,
        "stop_token_ids": stop_ids,
        "exact": False,
    }
    try:
        fields.update(_probe_no_colon_single(tokenizer, stop_str))
    except ValueError as why:
        logger.info("chat template of %s: %s", folder, why)
        return fields
    fields["exact"] = compiled_fields_exact(tokenizer, fields)
    return fields


def _probe_no_colon_single(tokenizer, stop_str: Optional[str]) -> dict:
    """Read system template, roles and separator off renderings of probe conversations."""
    full = prompt_text(tokenizer, [
        {"role": "system", "content": _SYS},
        {"role": "user", "content": _U1},
        {"role": "assistant", "content": _A1},
        {"role": "user", "content": _U2},
    ])
    if any(full.count(p) != 1 for p in (_SYS, _U1, _A1, _U2)):
        raise ValueError("a probe message is repeated or missing in the rendering")
    head, rest = full.split(_SYS)
    sys_to_user, rest = rest.split(_U1)
    user_to_assistant, rest = rest.split(_A1)
    assistant_to_user, generation_tail = rest.split(_U2)
    if user_to_assistant != generation_tail:
        raise ValueError("the generation prompt differs from a completed turn's opening")
    sep = os.path.commonprefix([user_to_assistant, assistant_to_user])
    if stop_str and stop_str in sep:  # separator = end-of-turn token plus trailing whitespace
        end = sep.index(stop_str) + len(stop_str)
        sep = sep[:end] + sep[end:][: len(sep[end:]) - len(sep[end:].lstrip())]
    user_role, assistant_role = assistant_to_user[len(sep):], user_to_assistant[len(sep):]
    if not sys_to_user.endswith(user_role):
        raise ValueError("the system block is not followed by an ordinary user turn")
    system_suffix = sys_to_user[: len(sys_to_user) - len(user_role)]
    escape = lambda s: s.replace("{", "{{").replace("}", "}}")  # noqa: E731
    no_system = prompt_text(tokenizer, [{"role": "user", "content": _U1}]).split(_U1)[0]
    tail = system_suffix + user_role
    if not (no_system.startswith(head) and no_system.endswith(tail) and len(no_system) >= len(head + tail)):
        raise ValueError("without a system message the template writes no system block")
    default = no_system[len(head): len(no_system) - len(tail)]
    return {
        "system_template": escape(head) + "{system_message}" + escape(system_suffix),
        "system_message": default,
        "roles": (user_role, assistant_role),
        "sep": sep,
    }


def compiled_fields_exact(tokenizer, fields: dict) -> bool:
    """Whether FastChat's own NO_COLON_SINGLE rendering of ``fields`` equals the template."""
    from fastchat.conversation import Conversation, SeparatorStyle

    probes = [
        [{"role": "user", "content": _U1}],
        [{"role": "system", "content": _SYS}, {"role": "user", "content": _U1}],
        [{"role": "user", "content": _U1}, {"role": "assistant", "content": _A1}, {"role": "user", "content": _U2}],
    ]
    for probe in probes:
        conv = Conversation(
            name="probe",
            system_template=fields["system_template"],
            system_message=fields["system_message"],
            roles=fields["roles"],
            messages=[],
            sep_style=SeparatorStyle.NO_COLON_SINGLE,
            sep=fields["sep"],
        )
        if fill_conversation(conv, probe).get_prompt() != prompt_text(tokenizer, probe):
            return False
    return True


def conversation_from_dict(fields: dict):
    """Rebuild a worker's ``/worker_get_conv_template`` answer, as FastChat's API server does."""
    from fastchat.conversation import Conversation, SeparatorStyle

    return Conversation(
        name=fields["name"], system_template=fields["system_template"],
        system_message=fields["system_message"], roles=tuple(fields["roles"]),
        messages=list(fields["messages"]), offset=fields["offset"],
        sep_style=SeparatorStyle(fields["sep_style"]), sep=fields["sep"], sep2=fields["sep2"],
        stop_str=fields["stop_str"], stop_token_ids=fields["stop_token_ids"],
    )


def fill_conversation(conv, messages: Sequence[Message]):
    """Append chat messages to a FastChat conversation, plus the empty slot for the reply."""
    for m in messages:
        if m["role"] == "system":
            conv.set_system_message(m["content"])
        else:
            conv.append_message(conv.roles[0 if m["role"] == "user" else 1], m["content"])
    conv.append_message(conv.roles[1], None)
    return conv
