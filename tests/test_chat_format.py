"""One source of truth for prompt formatting: the worker's prompt is exactly what SFT trains on."""


import pytest
import requests

from eto.chat_format import (
    compile_conversation, conversation_from_dict, encode_for_training, fill_conversation, load_tokenizer,
    prompt_text, render, stop_tokens,
)
import fastchat.serve  # noqa: F401  (installs the serving fixes, as FastChat's servers get them)
from fastchat.conversation import Conversation
from fastchat.model.model_adapter import get_conversation_template

# An ETO-shaped conversation: instruction, "OK", task, then agent/environment turns.
CONVERSATION = [
    {"role": "user", "content": "You are an agent in a text world. Answer with Thought: ... and Action: ..."},
    {"role": "assistant", "content": "OK"},
    {"role": "user", "content": "Your task is to boil water."},
    {"role": "assistant", "content": "Thought: I need a pot.\nAction: look around"},
    {"role": "user", "content": "Observation: You see a stove and a pot."},
]
REPLY = "Thought: Take the pot.\nAction: pick up pot"


def _labelled_spans(encoded):
    """Runs of consecutive labelled tokens (each label equal to its token)."""
    spans, current = [], []
    for token, label in zip(encoded["input_ids"], encoded["labels"]):
        if label != -100:
            assert label == token
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    return spans + ([current] if current else [])


def _as_api_server_builds_it(conv_dict, messages):
    """Rebuild the worker's template the way FastChat's OpenAI API server does, then fill it."""
    return fill_conversation(conversation_from_dict(conv_dict), messages)


def test_worker_prompt_is_exactly_the_sft_text(tiny_servers, tiny_model_path):
    conv_dict = requests.post(tiny_servers.worker_urls[0] + "/worker_get_conv_template", timeout=10).json()["conv"]
    conv = _as_api_server_builds_it(conv_dict, CONVERSATION)
    tokenizer = load_tokenizer(tiny_model_path)

    prompt_ids = tokenizer(conv.get_prompt()).input_ids  # what the worker feeds the model
    sft = encode_for_training(tokenizer, CONVERSATION + [{"role": "assistant", "content": REPLY}])
    assert sft["input_ids"][: len(prompt_ids)] == prompt_ids
    completion = sft["input_ids"][len(prompt_ids):]
    assert tokenizer.decode(completion) == REPLY + "<|im_end|>\n"

    # Generation stops where the trained turn ends: <|im_end|>, id 2, which is labelled.
    assert conv.stop_str == "<|im_end|>" and conv.stop_token_ids == [2]
    labelled = [t for t in sft["labels"][len(prompt_ids):] if t != -100]
    assert labelled[-1] == 2 and tokenizer.decode(labelled) == REPLY + "<|im_end|>"


def test_labels_cover_exactly_the_assistant_turns(bundled_model_path):
    tokenizer = load_tokenizer(bundled_model_path)
    sft = encode_for_training(tokenizer, CONVERSATION + [{"role": "assistant", "content": REPLY}])
    spans = [tokenizer.decode(span) for span in _labelled_spans(sft)]
    assistant = [m["content"] for m in CONVERSATION if m["role"] == "assistant"] + [REPLY]
    assert spans == [a + "<|im_end|>" for a in assistant]
    assert tokenizer.decode(sft["input_ids"]) == render(tokenizer, CONVERSATION + [{"role": "assistant", "content": REPLY}])


def test_bundled_model_folder_gets_its_own_template(bundled_model_path):
    conv = get_conversation_template(bundled_model_path)  # not FastChat's name-based "one_shot"
    assert conv.name.startswith("chat-template:")
    for m in CONVERSATION:
        conv.append_message(conv.roles[0 if m["role"] == "user" else 1], m["content"])
    conv.append_message(conv.roles[1], None)
    assert conv.get_prompt() == prompt_text(load_tokenizer(bundled_model_path), CONVERSATION)
    # The plain FastChat fields reproduce it too, for processes that cannot read the folder.
    plain = Conversation(**{f: getattr(conv, f) for f in (
        "system_template", "system_message", "roles", "messages", "sep_style", "sep", "stop_str")}, name="plain")
    assert plain.get_prompt() == conv.get_prompt()


# Chat formats of common families, written here as small Jinja templates (same text layout
# as the families' published templates), applied to the SmolLM2 tokenizer with the family's
# special tokens added.
FAMILIES = {
    "llama-3": dict(
        specials=["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        bos="<|begin_of_text|>", eos="<|eot_id|>", stop="<|eot_id|>",
        template="{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] | trim + '<|eot_id|>' }}{% endfor %}"
                 "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
    ),
    "qwen2.5": dict(
        specials=["<|im_start|>", "<|im_end|>"], bos=None, eos="<|im_end|>", stop="<|im_end|>",
        template="{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}{% endif %}"
                 "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
                 "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    ),
    "llama-2": dict(
        specials=["<s>", "</s>"], bos="<s>", eos="</s>", stop="</s>",
        template="{% if messages[0]['role'] == 'system' %}{% set sys = '<<SYS>>\n' + messages[0]['content'] + '\n<</SYS>>\n\n' %}{% set msgs = messages[1:] %}{% else %}{% set sys = '' %}{% set msgs = messages %}{% endif %}"
                 "{% for m in msgs %}{% if m['role'] == 'user' %}{{ bos_token + '[INST] ' + (sys if loop.first else '') + m['content'] + ' [/INST]' }}{% else %}{{ ' ' + m['content'] + ' ' + eos_token }}{% endif %}{% endfor %}",
    ),
    "mistral": dict(
        specials=["<s>", "</s>"], bos="<s>", eos="</s>", stop="</s>",
        template="{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}",
    ),
}


@pytest.fixture(scope="module")
def family_folders(tmp_path_factory, bundled_model_path):
    from transformers import AutoTokenizer

    folders = {}
    for family, spec in FAMILIES.items():
        tokenizer = AutoTokenizer.from_pretrained(bundled_model_path)
        tokenizer.add_special_tokens({"additional_special_tokens": spec["specials"]})
        tokenizer.bos_token, tokenizer.eos_token = spec["bos"], spec["eos"]
        tokenizer.chat_template = spec["template"]
        folder = str(tmp_path_factory.mktemp("families") / family)
        tokenizer.save_pretrained(folder)
        folders[family] = folder
    return folders


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_folder_prompts_follow_its_chat_template(family, family_folders):
    folder = family_folders[family]
    tokenizer = load_tokenizer(folder)
    conv = get_conversation_template(folder)
    for m in CONVERSATION:
        conv.append_message(conv.roles[0 if m["role"] == "user" else 1], m["content"])
    conv.append_message(conv.roles[1], None)
    assert conv.get_prompt() == prompt_text(tokenizer, CONVERSATION)
    assert conv.stop_str == FAMILIES[family]["stop"]
    assert tokenizer.convert_tokens_to_ids(FAMILIES[family]["stop"]) in conv.stop_token_ids


@pytest.mark.parametrize("name, template", [
    ("meta-llama/Llama-2-7b-chat-hf", "llama-2"),
    ("mistralai/Mistral-7B-Instruct-v0.2", "mistral"),
    ("Qwen/Qwen2.5-7B-Instruct", "qwen-7b-chat"),
])
def test_names_without_a_folder_fall_back_to_fastchat_families(name, template):
    assert get_conversation_template(name).name == template


def test_stop_tokens_of_bundled_model(bundled_model_path):
    assert stop_tokens(load_tokenizer(bundled_model_path)) == ("<|im_end|>", [2])


def test_compiled_conversation_survives_copy(bundled_model_path):
    conv = compile_conversation(bundled_model_path).copy()
    conv.append_message(conv.roles[0], "hi")
    conv.append_message(conv.roles[1], None)
    assert conv.get_prompt() == prompt_text(load_tokenizer(bundled_model_path), [{"role": "user", "content": "hi"}])



@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_templates_without_generation_markers_label_each_turn_and_its_stop(family, family_folders):
    """Templates without {% generation %} markers (most published ones) are masked by rendering
    prefixes; each labelled span is one assistant turn followed by the family's stop token."""
    tokenizer = load_tokenizer(family_folders[family])
    messages = CONVERSATION + [{"role": "assistant", "content": REPLY}]
    encoded = encode_for_training(tokenizer, messages)
    assert tokenizer.decode(encoded["input_ids"]) == render(tokenizer, messages)
    spans = _labelled_spans(encoded)
    stop_id = tokenizer.convert_tokens_to_ids(FAMILIES[family]["stop"])
    assistant = [m["content"] for m in messages if m["role"] == "assistant"]
    assert len(spans) == len(assistant)
    for span, content in zip(spans, assistant):
        assert span[-1] == stop_id
        assert tokenizer.decode(span[:-1]).strip() == content


def test_generation_markers_and_prefix_rendering_agree(bundled_model_path):
    from eto.chat_format import _encode_by_prefixes

    tokenizer = load_tokenizer(bundled_model_path)
    messages = CONVERSATION + [{"role": "assistant", "content": REPLY}]
    by_markers = encode_for_training(tokenizer, messages)
    ids, mask = _encode_by_prefixes(tokenizer, messages)
    assert ids == by_markers["input_ids"]
    assert [t if m else -100 for t, m in zip(ids, mask)] == by_markers["labels"]
