"""FastChat's vLLM worker on today's vLLM (``fastchat/serve/vllm_worker.py``), real processes.

The tiny model (random weights, real SmolLM2 tokenizer and chat template) is served by both
engines in float32; greedy decoding must then give the HF worker's replies token for token.
"""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import requests

from conftest import needs_vllm
from fastchat.launch import REPO_ROOT, free_port, resolve_engine

PROMPTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nYou are in the kitchen. Find a thermometer.<|im_end|>\n<|im_start|>assistant\nThought:",
    "<|im_start|>system\nYou are a shopping agent.<|im_end|>\n<|im_start|>user\nObservation: [Search]<|im_end|>\n"
    "<|im_start|>assistant\n",
]


def _worker_url(servers) -> str:
    return requests.post(servers.controller_url + "/get_worker_address", json={"model": servers.model_name},
                         timeout=10).json()["address"]


def _generate(url, prompt, **params):
    body = {"prompt": prompt, "temperature": 0.0, "top_p": 1.0, "max_new_tokens": 16, "echo": False}
    body.update(params)
    chunks = []
    with requests.post(url + "/worker_generate_stream", json=body, stream=True, timeout=120) as resp:
        resp.raise_for_status()
        for chunk in resp.iter_lines(delimiter=b"\0"):
            if chunk:
                chunks.append(json.loads(chunk))
    return chunks


@needs_vllm
def test_vllm_worker_registers_with_the_model_folder_template(tiny_vllm_servers, tiny_servers):
    assert tiny_vllm_servers.engine == "vllm"
    vllm_url, hf_url = _worker_url(tiny_vllm_servers), _worker_url(tiny_servers)
    assert tiny_vllm_servers.model_name in tiny_vllm_servers.list_models()

    def ask(url, path, body=None):
        return requests.post(url + path, json=body or {}, timeout=30).json()

    assert ask(vllm_url, "/worker_get_conv_template") == ask(hf_url, "/worker_get_conv_template")
    assert ask(vllm_url, "/worker_get_conv_template")["conv"]["name"].startswith("chat-template:")
    assert ask(vllm_url, "/model_details") == ask(hf_url, "/model_details") == {"context_length": 4096}
    for prompt in PROMPTS:
        assert ask(vllm_url, "/count_token", {"prompt": prompt}) == ask(hf_url, "/count_token", {"prompt": prompt})


@needs_vllm
def test_greedy_replies_stops_and_lengths_match_the_hf_worker(tiny_vllm_servers, tiny_servers):
    vllm_url, hf_url = _worker_url(tiny_vllm_servers), _worker_url(tiny_servers)
    for prompt in PROMPTS:
        vllm_final, hf_final = _generate(vllm_url, prompt)[-1], _generate(hf_url, prompt)[-1]
        assert vllm_final["text"] == hf_final["text"] and vllm_final["text"]
        assert vllm_final["finish_reason"] == hf_final["finish_reason"] == "length"
        assert vllm_final["usage"]["completion_tokens"] == 16

        # A stop string taken from inside the reply: both cut the reply just before it.
        text = hf_final["text"]
        stop = text[len(text) // 2: len(text) // 2 + 3]
        cut_vllm = _generate(vllm_url, prompt, stop=["\nObservation:", stop])[-1]
        cut_hf = _generate(hf_url, prompt, stop=["\nObservation:", stop])[-1]
        assert cut_vllm["text"] == cut_hf["text"] == text[: text.index(stop)]
        assert cut_vllm["finish_reason"] == cut_hf["finish_reason"] == "stop"

        for n in (1, 5):
            assert _generate(vllm_url, prompt, max_new_tokens=n)[-1]["usage"]["completion_tokens"] == n


@needs_vllm
def test_vllm_worker_streams_growing_text_and_samples_with_temperature(tiny_vllm_servers):
    url = _worker_url(tiny_vllm_servers)
    chunks = _generate(url, PROMPTS[0], max_new_tokens=24)
    texts = [c["text"] for c in chunks]
    assert len(chunks) > 2 and all(b.startswith(a) for a, b in zip(texts, texts[1:]))
    assert chunks[-1]["finish_reason"] == "length" and all(c["error_code"] == 0 for c in chunks)
    samples = {_generate(url, PROMPTS[0], temperature=1.0, top_p=1.0, max_new_tokens=12)[-1]["text"] for _ in range(4)}
    assert len(samples) > 1  # a random model sampled at temperature 1 does not repeat itself


@needs_vllm
def test_concurrent_requests_get_their_own_replies(tiny_vllm_servers):
    """Requests in flight together are batched by vLLM; each still gets its prompt's greedy reply."""
    from concurrent.futures import ThreadPoolExecutor

    url = _worker_url(tiny_vllm_servers)
    alone = [_generate(url, p)[-1]["text"] for p in PROMPTS]
    with ThreadPoolExecutor(len(PROMPTS) * 2) as pool:
        together = list(pool.map(lambda p: _generate(url, p)[-1]["text"], PROMPTS * 2))
    assert together == alone * 2


@needs_vllm
@pytest.mark.parametrize("bad_path", ["does/not-exist", "setup.sh", "tests"])
def test_vllm_worker_bad_model_path_is_one_clear_line(bad_path):
    result = subprocess.run(
        [sys.executable, "-m", "fastchat.serve.vllm_worker", "--model-path", bad_path, "--port", str(free_port())],
        cwd=REPO_ROOT, env=dict(os.environ, HF_HUB_OFFLINE="1"), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: cannot load --model-path '{bad_path}'")


@needs_vllm
def test_sigterm_stops_the_engine_processes_too(tiny_model_path):
    """vLLM runs the model in child processes; a SIGTERM to the worker alone must end them too."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastchat.serve.vllm_worker", "--model-path", tiny_model_path, "--port", str(port),
         "--no-register", "--dtype", "float32"],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            assert proc.poll() is None, "the vLLM worker exited during start-up"
            try:
                if requests.post(f"http://127.0.0.1:{port}/worker_get_status", timeout=5).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "vLLM started no engine process"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, [p.name() for p in alive]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_engine_choice():
    assert resolve_engine("hf") == "hf" and resolve_engine("vllm") == "vllm"
    with pytest.raises(ValueError, match="unknown engine"):
        resolve_engine("tgi")
    printed = subprocess.run([sys.executable, "-m", "fastchat.launch", "--print-engine"], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=180).stdout.strip()
    import importlib.util

    assert printed == ("vllm" if importlib.util.find_spec("vllm") else "hf")
