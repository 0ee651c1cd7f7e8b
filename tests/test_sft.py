"""SFT: the trajectory format's validator and the trainer (fastchat/train/train.py).

Training tests use the tiny randomly initialised Llama from conftest (real architecture, real
SmolLM2 tokenizer and chat template), so a few optimizer steps take seconds on CPU.
"""

import json
import glob
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from conftest import fill_up
from eto.io import DataError
from eto.records import load_sft_data
from eto.trainer_core import COMPLETE_MARKER, translate_legacy_args
from fastchat.train.train import DataArguments, tokenize_records

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_SCRIPT = os.path.join(REPO_ROOT, "fastchat", "train", "train.py")


def _conversation(i):
    return [
        {"from": "human", "value": "You are an agent in a text world. Reply with Thought: ... and Action: ..."},
        {"from": "gpt", "value": "OK"},
        {"from": "human", "value": f"Task Description: put the apple {i} in the box."},
        {"from": "gpt", "value": f"Thought: The apple {i} should go in the box.\nAction: pick up apple {i}"},
        {"from": "human", "value": f"Observation: You take the apple {i}."},
        {"from": "gpt", "value": f"Thought: Now the box.\nAction: move apple {i} to box"},
    ]


@pytest.fixture(scope="module")
def sft_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sft") / "toy_sft.json"
    path.write_text(json.dumps([{"id": f"toy_{i}", "conversations": _conversation(i)} for i in range(4)]))
    return str(path)


def _train(args, env_extra=None, max_file_bytes=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env_extra or {}))
    return subprocess.run([sys.executable, TRAIN_SCRIPT, *args], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, timeout=600, preexec_fn=_file_size_limit(max_file_bytes) if max_file_bytes else None)


def _file_size_limit(max_bytes):
    """A disk that fills up, as far as the writer can tell: no file may grow past ``max_bytes``
    (a write past it fails with EFBIG, "File too large", as one fails with ENOSPC on a full disk)."""
    def limit():
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return limit


# ------------------------------------------------------------------ format validation
@pytest.mark.parametrize("records, message", [
    ("not json", "not valid JSON"),
    ({"id": "a"}, "expected a JSON list"),
    ([{"conversations": []}], "record 0: missing field 'id'"),
    ([{"id": "ep7"}], "record 0 (id 'ep7'): missing field 'conversations'"),
    ([{"id": "ep7", "conversations": []}], "(id 'ep7'): 'conversations' is empty"),
    ([{"id": "ep7", "conversations": [{"from": "gpt", "value": "OK"}]}], "(id 'ep7'): conversations turn 0 is from 'gpt', expected 'human'"),
    ([{"id": "ep7", "conversations": [{"from": "human"}]}], "(id 'ep7'): conversations turn 0 needs 'from' and 'value'"),
    ([{"id": "ep7", "conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "OK"}]}],
     "(id 'ep7'): 2 turns"),
])
def test_bad_trajectory_files_fail_with_one_line_naming_the_record(tmp_path, records, message):
    path = tmp_path / "bad.json"
    path.write_text(records if isinstance(records, str) else json.dumps(records))
    with pytest.raises(DataError) as error:
        load_sft_data(str(path))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_duplicate_ids_are_rejected(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text(json.dumps([{"id": "a", "conversations": _conversation(0)}] * 2))
    with pytest.raises(DataError, match="record 1: duplicate id 'a'"):
        load_sft_data(str(path))


def test_trainer_cli_reports_bad_data_in_one_line(tmp_path, tiny_model_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"id": "ep9", "conversations": [{"from": "gpt", "value": "OK"}]}]))
    result = _train(["--model_name_or_path", tiny_model_path, "--data_path", str(path), "--output_dir", str(tmp_path / "out")])
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "id 'ep9'" in errors[0] and "Traceback" not in result.stderr


def test_trainer_cli_rejects_a_wrong_model_path(tmp_path, sft_file):
    result = _train(["--model_name_or_path", str(tmp_path), "--data_path", sft_file, "--output_dir", str(tmp_path / "o")])
    assert result.returncode == 2 and "not a model folder" in result.stderr and "Traceback" not in result.stderr


# ------------------------------------------------------------------ command line of the original
def test_original_flags_are_translated_for_current_transformers():
    argv = ["--evaluation_strategy", "no", "--warmup_ratio=0.03", "--model_max_length", "4096", "--lazy_preprocess", "True",
            "--bf16", "True", "--tf32", "True", "--fsdp", "full_shard auto_wrap",
            "--fsdp_transformer_layer_cls_to_wrap", "LlamaDecoderLayer", "--gradient_checkpointing", "True"]
    gpu, _ = translate_legacy_args(argv, has_cuda=True)
    assert gpu[:6] == ["--eval_strategy", "no", "--warmup_steps", "0.03", "--max_length", "4096"]
    assert ["--bf16", "True"] == gpu[8:10] and ["--fsdp", "--activation_checkpointing"] == gpu[12:14]  # a bare --fsdp
    assert json.loads(gpu[gpu.index("--fsdp_config") + 1]) == {"reshard_after_forward": True,  # full_shard in FSDP2
                                                               "transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"]}
    assert gpu[gpu.index("--activation_checkpointing") + 1] == "True" and "--gradient_checkpointing" not in gpu
    cpu, notes = translate_legacy_args(argv, has_cuda=False)
    assert "--bf16" not in cpu and "--tf32" not in cpu and "--fsdp" not in cpu and "--fsdp_config" not in cpu
    assert any("ignoring --bf16" in n for n in notes)
    # A CPU with bf16 instructions keeps --bf16 (autocast), which transformers accepts only with --use_cpu.
    bf16_cpu, notes = translate_legacy_args(argv, has_cuda=False, cpu_bf16=True)
    assert bf16_cpu[bf16_cpu.index("--bf16") + 1] == "True" and bf16_cpu[bf16_cpu.index("--use_cpu") + 1] == "True"
    assert "--tf32" not in bf16_cpu and "--fsdp" not in bf16_cpu and any("bf16 autocast" in n for n in notes)
    assert translate_legacy_args(["--bf16", "False"], has_cuda=False, cpu_bf16=True)[0] == ["--bf16", "False"]


# ------------------------------------------------------------------ data preparation
def test_overlong_conversations_are_truncated_or_dropped_and_counted(tiny_model_path):
    from eto.chat_format import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_path)
    records = [{"id": str(i), "conversations": _conversation(i)} for i in range(3)]
    full, _ = tokenize_records(records, tokenizer, 10_000, "truncate")
    lengths = [len(ids) for ids in full["input_ids"]]
    limit = min(lengths) - 5
    cut, stats = tokenize_records(records, tokenizer, limit, "truncate")
    assert stats["overlong"] == 3 and stats["truncated"] == 3 and stats["dropped"] == 0
    assert all(len(ids) == limit for ids in cut["input_ids"])
    _, stats = tokenize_records(records, tokenizer, limit, "drop")
    assert stats["dropped"] == 3
    # A limit that leaves no agent token cannot be trained on: dropped even in truncate mode.
    _, stats = tokenize_records(records, tokenizer, 20, "truncate")
    assert stats["dropped"] == 3
    assert DataArguments(data_path="x").overlong == "truncate"


def test_packed_sequences_do_not_attend_across_conversations(tiny_model_path):
    """Padding-free packing relies on position ids restarting per conversation: the logits of
    a conversation packed after another must equal its logits alone."""
    import torch
    from transformers import AutoModelForCausalLM

    from eto.chat_format import encode_for_training, load_tokenizer
    from eto.records import to_messages

    tokenizer = load_tokenizer(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32).eval()
    a, b = (encode_for_training(tokenizer, to_messages(_conversation(i)))["input_ids"] for i in (1, 2))
    positions = torch.tensor([list(range(len(a))) + list(range(len(b)))])
    with torch.no_grad():  # no KV cache, as in training (TRL passes use_cache=False)
        alone = model(torch.tensor([b]), use_cache=False).logits[0]
        packed = model(torch.tensor([a + b]), position_ids=positions, use_cache=False).logits[0]
    assert torch.allclose(packed[len(a):], alone, atol=1e-4)


# ------------------------------------------------------------------ training
def _mean_agent_loss(model_path, sft_file):
    import torch
    from transformers import AutoModelForCausalLM

    from eto.chat_format import encode_for_training, load_tokenizer
    from eto.records import to_messages

    tokenizer = load_tokenizer(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    losses = []
    with torch.no_grad():
        for record in load_sft_data(sft_file):
            encoded = encode_for_training(tokenizer, to_messages(record["conversations"]))
            losses.append(model(torch.tensor([encoded["input_ids"]]), labels=torch.tensor([encoded["labels"]])).loss.item())
    return sum(losses) / len(losses)


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory, tiny_model_path, sft_file):
    out = str(tmp_path_factory.mktemp("sft-out") / "tiny-sft")
    result = _train(["--model_name_or_path", tiny_model_path, "--data_path", sft_file, "--output_dir", out,
                     "--num_train_epochs", "6", "--per_device_train_batch_size", "2", "--learning_rate", "3e-3",
                     "--model_max_length", "512", "--lr_scheduler_type", "constant", "--save_strategy", "no",
                     "--evaluation_strategy", "no", "--bf16", "True"])
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_tiny_model_loss_falls_on_agent_turns(trained_model, tiny_model_path, sft_file):
    out, result = trained_model
    assert "4 conversations, 0 longer than 512 tokens" in result.stdout
    before, after = _mean_agent_loss(tiny_model_path, sft_file), _mean_agent_loss(out, sft_file)
    assert after < 0.5 * before, (before, after)


def test_saved_folder_is_complete_and_served_by_a_real_worker(trained_model, tmp_path):
    from fastchat.launch import FastChatServers

    out, _ = trained_model
    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", COMPLETE_MARKER):
        assert os.path.isfile(os.path.join(out, name)), name
    # Trained with --bf16: mixed precision keeps fp32 weights (a bf16 weight would lose lr-1e-6 updates).
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["dtype"] == "float32"
    with FastChatServers(out, device="cpu", torch_threads=1, log_dir=str(tmp_path / "logs")) as servers:
        worker = servers.worker_urls[0]
        conv = requests.post(worker + "/worker_get_conv_template", timeout=30).json()["conv"]
        assert conv["name"] == "chat-template:" + os.path.abspath(out)
        models = requests.post(servers.controller_url + "/list_models", timeout=30).json()["models"]
        assert models == [os.path.basename(out)]
        resp = requests.post(worker + "/worker_generate_stream", timeout=60, stream=True, json={
            "model": os.path.basename(out), "prompt": "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
            "temperature": 0.0, "max_new_tokens": 8, "echo": False, "stop_token_ids": [2]})
        chunks = [json.loads(c.decode()) for c in resp.iter_lines(delimiter=b"\0") if c]
        assert chunks and chunks[-1]["error_code"] == 0


def test_a_finished_model_is_not_overwritten(trained_model, sft_file, tiny_model_path):
    out, _ = trained_model
    before = os.path.getmtime(os.path.join(out, "model.safetensors"))
    result = _train(["--model_name_or_path", tiny_model_path, "--data_path", sft_file, "--output_dir", out])
    assert result.returncode == 2 and "already holds a trained model" in result.stderr
    assert os.path.getmtime(os.path.join(out, "model.safetensors")) == before


def test_two_trainings_never_write_one_folder(tmp_path, tiny_model_path, sft_file):
    import fcntl

    out = tmp_path / "out"
    common = ["--model_name_or_path", tiny_model_path, "--data_path", sft_file, "--output_dir", str(out),
              "--save_strategy", "no"]
    first = subprocess.Popen([sys.executable, TRAIN_SCRIPT, *common, "--num_train_epochs", "1000"], cwd=REPO_ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        deadline = time.time() + 300
        while True:  # until the first one holds the folder's lock
            assert first.poll() is None and time.time() < deadline
            if (out / ".lock").exists():
                with open(out / ".lock") as probe:
                    try:
                        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        fcntl.flock(probe, fcntl.LOCK_UN)
                    except BlockingIOError:
                        break
            time.sleep(0.2)
        second = _train(common)
        assert second.returncode == 2
        assert second.stderr.strip().splitlines()[-1] == \
            f"error: {out} is being written by another training run; wait for it or stop it"
    finally:
        first.kill()
        first.wait()
    third = _train(common + ["--max_steps", "1"])  # the lock went with the process
    assert third.returncode == 0, third.stderr[-2000:]


def test_lora_is_merged_on_save_and_training_resumes_from_a_checkpoint(tmp_path, tiny_model_path, sft_file):
    from safetensors.torch import load_file

    out = str(tmp_path / "lora")
    common = ["--model_name_or_path", tiny_model_path, "--data_path", sft_file, "--output_dir", out,
              "--lora_r", "8", "--lora_target_modules", "q_proj,v_proj", "--learning_rate", "1e-2",
              "--per_device_train_batch_size", "1", "--save_strategy", "steps", "--save_steps", "2"]
    first = _train(common + ["--max_steps", "2"])
    assert first.returncode == 0, first.stderr[-3000:]
    weights = load_file(os.path.join(out, "model.safetensors"))
    base = load_file(os.path.join(tiny_model_path, "model.safetensors"))
    assert not any("lora" in name for name in weights)  # merged: a plain model the worker can load
    assert not all((weights[n] == base[n]).all() for n in base if "q_proj" in n)

    # A run killed after its checkpoint: the final files are missing, checkpoint-2 remains.
    os.remove(os.path.join(out, COMPLETE_MARKER))
    checkpoint_2 = {p: open(p, "rb").read() for p in glob.glob(os.path.join(out, "checkpoint-2", "*"))}
    # The disk fills up while checkpoint-4 is written: one clear line, checkpoint-2 untouched.
    full = _train(common + ["--max_steps", "4"], max_file_bytes=64 * 1024)
    assert full.returncode == 1 and "Traceback" not in full.stderr
    assert [line for line in full.stderr.splitlines() if line.startswith("error: a write failed for lack of space")], full.stderr[-1500:]
    assert {p: open(p, "rb").read() for p in glob.glob(os.path.join(out, "checkpoint-2", "*"))} == checkpoint_2
    assert not os.path.exists(os.path.join(out, "checkpoint-4", "trainer_state.json"))
    second = _train(common + ["--max_steps", "4"])
    assert second.returncode == 0, second.stderr[-3000:]
    assert "checkpoint-4 is incomplete" in second.stdout  # cut short: passed over
    assert "resuming from" in second.stdout and "checkpoint-2" in second.stdout
    assert os.path.isdir(os.path.join(out, "checkpoint-4"))


def test_a_really_full_disk_during_a_checkpoint_keeps_the_previous_one(full_tmpfs, tiny_model_path, sft_file):
    """The output folder on a file system that fills up (a tmpfs, ENOSPC) while checkpoint-4 is
    written: one line, exit 1, checkpoint-2 whole; with space again, training resumes from it."""
    out = str(full_tmpfs("256m") / "sft")
    common = ["--model_name_or_path", tiny_model_path, "--data_path", sft_file, "--output_dir", out,
              "--learning_rate", "1e-2", "--per_device_train_batch_size", "1", "--save_strategy", "steps",
              "--save_steps", "2"]
    first = _train(common + ["--max_steps", "2"])
    assert first.returncode == 0, first.stderr[-3000:]
    os.remove(os.path.join(out, COMPLETE_MARKER))  # as if killed after its checkpoint
    checkpoint_2 = {p: open(p, "rb").read() for p in glob.glob(os.path.join(out, "checkpoint-2", "*"))}
    fill_up(os.path.dirname(out))
    full = _train(common + ["--max_steps", "4"])
    assert full.returncode == 1 and "Traceback" not in full.stderr
    assert [line for line in full.stderr.splitlines() if line.startswith("error: a write failed for lack of space")], full.stderr[-1500:]
    assert {p: open(p, "rb").read() for p in glob.glob(os.path.join(out, "checkpoint-2", "*"))} == checkpoint_2
    os.remove(os.path.join(os.path.dirname(out), "filler"))
    second = _train(common + ["--max_steps", "4"])
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from" in second.stdout and "checkpoint-2" in second.stdout
    assert os.path.exists(os.path.join(out, COMPLETE_MARKER))


def test_batching_packs_only_with_flash_attention(tmp_path):
    """Without flash attention, a packed row is attended as a whole under a block mask (slower
    than padded batches of similar length), so packing is chosen only with flash attention."""
    from types import SimpleNamespace

    from fastchat.train.train import TrainingArguments, choose_batching

    def model(attn):
        return SimpleNamespace(config=SimpleNamespace(_attn_implementation=attn))

    args = TrainingArguments(output_dir=str(tmp_path))
    assert "padded" in choose_batching(args, model("sdpa"))
    assert args.packing is False and args.train_sampling_strategy == "group_by_length"
    args = TrainingArguments(output_dir=str(tmp_path))
    assert "packed" in choose_batching(args, model("flash_attention_2")) and args.packing is True
    args = TrainingArguments(output_dir=str(tmp_path), packing=True)
    assert "packed" in choose_batching(args, model("sdpa")) and args.packing is True


@pytest.mark.parametrize("steps, expected", [(1, 0), (2, 1), (4, 1), (100, 10)])
def test_warmup_never_uses_up_a_short_run(tmp_path, steps, expected):
    """--warmup_ratio 0.1 rounds up, and a warmup step starts at lr 0: one training step must still train."""
    from fastchat.train.train import TrainingArguments
    from fastchat.train.train_dpo import DPOTrainingArguments

    for config in (TrainingArguments, DPOTrainingArguments):
        args = config(output_dir=str(tmp_path), warmup_steps=0.1, use_cpu=True)
        assert args.get_warmup_steps(steps) == expected


def test_the_lm_head_scores_only_labelled_positions_on_cpu_with_the_same_loss(tiny_model_path, sft_file, monkeypatch):
    """eto.trainer_core.score_labelled_positions_only: TRL's fused LM head projects only the
    positions with a label (the agent's tokens) instead of all of them: same loss and gradients."""
    import torch
    import trl.trainer.utils as trl_utils
    from transformers import AutoModelForCausalLM

    from eto.chat_format import load_tokenizer
    from eto.trainer_core import score_labelled_positions_only

    columns, stats = tokenize_records(load_sft_data(sft_file)[:2], load_tokenizer(tiny_model_path), 512, "truncate")
    width = max(len(ids) for ids in columns["input_ids"])
    pad = lambda rows, value: torch.tensor([row + [value] * (width - len(row)) for row in rows])  # noqa: E731
    input_ids, labels = pad(columns["input_ids"], 0), pad(columns["labels"], -100)
    attention_mask = pad([[1] * len(ids) for ids in columns["input_ids"]], 0)
    projected = []
    chunked = trl_utils._ChunkedLogProbFunction

    class Counting(chunked):
        @staticmethod
        def apply(hidden, *rest):
            projected.append(hidden.shape[0])
            return chunked.apply(hidden, *rest)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Counting)
    monkeypatch.setattr(trl_utils, "_use_triton", trl_utils._use_triton)  # restored after the test

    def loss_and_grad():
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
        trl_utils.add_fused_lm_head(model)
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, fused_lm_head=True).loss
        loss.backward()
        return loss.item(), model.get_output_embeddings().weight.grad.clone()

    every_loss, every_grad = loss_and_grad()
    score_labelled_positions_only()
    labelled_loss, labelled_grad = loss_and_grad()
    assert projected == [input_ids.numel() - input_ids.shape[0], stats["label_tokens"]]
    assert projected[1] < projected[0] / 2
    assert abs(labelled_loss - every_loss) < 1e-5 * abs(every_loss)
    assert torch.allclose(labelled_grad, every_grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("keep_logits", [True, False], ids=["products-kept", "products-recomputed"])
def test_the_cpu_lm_head_gives_trls_log_probs_outputs_and_gradients(monkeypatch, keep_logits):
    """eto.cpu_lm_head.TokenLogProbs against TRL's ChunkedLogProbFunction, in fp32 (where both
    are exact up to float rounding): every output and the gradients of a loss that uses the
    log-probabilities and the entropy, at a temperature, over several token chunks; the products
    kept for the backward or recomputed there. Random tensors, no model."""
    import torch
    from trl.kernels import ChunkedLogProbFunction

    from eto import cpu_lm_head

    monkeypatch.setattr(cpu_lm_head, "CHUNK_TOKENS", 16)
    monkeypatch.setattr(cpu_lm_head, "KEEP_LOGITS", 10**9 if keep_logits else 0)
    torch.manual_seed(0)
    hidden, weight = torch.randn(37, 24), torch.randn(300, 24) * 0.3
    targets = torch.randint(0, 300, (37,))
    targets[3], targets[5] = 200, 100
    weight[100], weight[200] = hidden[5], hidden[3]  # rows 3 and 5: the target is the largest logit,
    weight[7] = weight[200]  # but in row 3 an earlier word ties with it, so only row 5's is top-1
    outputs = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")

    def run(function):
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        results = function.apply(h, w, None, targets, 0.7, 128, None, 1.0, outputs)
        (-results[0].sum() + 0.3 * results[1].sum()).backward()
        return results, h.grad, w.grad

    (theirs, their_dh, their_dw), (ours, our_dh, our_dw) = run(ChunkedLogProbFunction), run(cpu_lm_head.CpuTokenLogProbs(ChunkedLogProbFunction))
    for name, a, b in zip(outputs, ours, theirs):
        if name == "is_top1":
            assert torch.equal(a, b) and a[5] and not a[3], name
        else:
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-5), name
    for a, b in ((our_dh, their_dh), (our_dw, their_dw)):
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()


def test_the_cpu_lm_head_leaves_what_it_does_not_cover_to_trl():
    """A head with a bias, soft-capping or a logit scale goes to TRL's kernel; a plain one does not."""
    import torch

    from eto.cpu_lm_head import CpuTokenLogProbs

    calls = []

    class Recording:
        @staticmethod
        def apply(*args):
            calls.append(args)
            return "trl"

    head = CpuTokenLogProbs(Recording)
    hidden, weight, targets = torch.randn(3, 4), torch.randn(5, 4), torch.tensor([0, 1, 2])
    assert head.apply(hidden, weight, torch.zeros(5), targets, 1.0, 8, None, 1.0, ("log_probs",)) == "trl"
    assert head.apply(hidden, weight, None, targets, 1.0, 8, 30.0, 1.0, ("log_probs",)) == "trl"
    assert head.apply(hidden, weight, None, targets, 1.0, 8, None, 0.5, ("log_probs",)) == "trl"
    assert len(calls) == 3
    log_probs = head.apply(hidden, weight, None, targets, 1.0, 8, None, 1.0, ("log_probs",))[0]
    assert len(calls) == 3 and torch.allclose(log_probs, torch.log_softmax(hidden @ weight.t(), -1)[[0, 1, 2], targets])


def test_trained_weights_are_copied_out_of_the_model_files_mapping(tiny_model_path, tmp_path):
    """eto.trainer_core.own_weight_memory: transformers maps the safetensors file and the weights
    are views of it, so the first optimizer step would fault every page copy-on-write. The loaded
    policy's weights lie outside the file's mapping (read in /proc/self/maps), tied ones stay tied,
    and --file_mapped_weights_on_cpu True keeps them in it (so this test can tell)."""
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("needs /proc/self/maps (Linux)")
    from eto.trainer_core import ModelArguments, load_model_and_tokenizer
    from fastchat.train.train import TrainingArguments

    def in_file_mapping(model) -> bool:
        address = model.get_input_embeddings().weight.data_ptr()
        for line in open("/proc/self/maps"):
            span, *rest = line.split()
            low, high = (int(x, 16) for x in span.split("-"))
            if low <= address < high:
                return rest[-1].endswith(".safetensors")
        return False

    for mapped in (True, False):
        args = TrainingArguments(output_dir=str(tmp_path / str(mapped)), use_cpu=True, file_mapped_weights_on_cpu=mapped)
        model, _ = load_model_and_tokenizer(ModelArguments(model_name_or_path=tiny_model_path), args)
        assert in_file_mapping(model) is mapped
        if model.config.tie_word_embeddings:
            assert model.get_output_embeddings().weight is model.get_input_embeddings().weight


@pytest.mark.parametrize("optim, folded", [("adamw_torch_fused", True), ("adamw_torch", False)])
def test_gradient_clipping_folded_into_the_fused_adamw_step_gives_the_same_training(tiny_model_path, optim, folded,
                                                                                   monkeypatch):
    """eto.cpu_grad_clip: with torch's fused AdamW, the clip coefficient is applied by the
    optimizer step (its grad_scale) instead of a pass over every gradient. Three steps of the tiny
    model with a clip that bites at every step: the same logged norms and the same weights as
    transformers' own clipping. Another optimizer keeps transformers' clipping."""
    import torch
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from eto import cpu_grad_clip

    torch.manual_seed(0)
    rows = [{"input_ids": ids, "labels": ids} for ids in torch.randint(0, 1000, (3, 24)).tolist()]
    folds = []
    monkeypatch.setattr(cpu_grad_clip, "total_norm", lambda grads, f=cpu_grad_clip.total_norm: folds.append(1) or f(grads))

    def train(fold, out):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
        # adam_epsilon 1: an update about proportional to the gradient, so a clip missed or applied
        # twice shows in the weights (with the usual 1e-8 Adam's update ignores the gradient's scale)
        args = TrainingArguments(output_dir=out, use_cpu=True, optim=optim, max_steps=3, learning_rate=1e-2,
                                 adam_epsilon=1.0, max_grad_norm=0.05, logging_steps=1, save_strategy="no", report_to="none",
                                 disable_tqdm=True, seed=0)
        trainer = Trainer(model=model, args=args, train_dataset=rows)
        if fold:
            cpu_grad_clip.install(trainer)
        trainer.train()
        norms = [entry["grad_norm"] for entry in trainer.state.log_history if "grad_norm" in entry]
        return norms, [p.detach().clone() for p in model.parameters()]

    two_pass_norms, two_pass_weights = train(False, str(tiny_model_path) + f"-clip-{optim}-0")
    folded_norms, folded_weights = train(True, str(tiny_model_path) + f"-clip-{optim}-1")
    assert len(folds) == (3 if folded else 0)
    assert min(two_pass_norms) > 0.05 * 10  # the clip scales every step's gradients down
    assert folded_norms == pytest.approx(two_pass_norms, rel=1e-5)
    print("largest weight difference", max((a - b).abs().max().item() for a, b in zip(two_pass_weights, folded_weights)))
    for a, b in zip(two_pass_weights, folded_weights):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
