"""DPO on trajectory pairs (fastchat/train/train_dpo.py).

Training uses the tiny randomly initialised Llama from conftest (real architecture, real SmolLM2
tokenizer and chat template); the pairs are hand-made two-step episodes.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

from eto.chat_format import load_tokenizer
from eto.records import load_preference_data
from eto.io import DataError
from eto.trainer_core import COMPLETE_MARKER
from fastchat.train.train_dpo import build_dataset, DPODataArguments, pair_logprobs, tokenize_pair, truncate_pair

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DPO_SCRIPT = os.path.join(REPO_ROOT, "fastchat", "train", "train_dpo.py")
BETA = 0.1


def _pair(i):
    prompt = [{"from": "human", "value": "You are an agent in a text world. Reply with Thought and Action."},
              {"from": "gpt", "value": "OK"},
              {"from": "human", "value": f"Task: put the apple {i} in the box."}]
    chosen = [{"from": "gpt", "value": f"Thought: Get apple {i}.\nAction: pick up apple {i}"},
              {"from": "human", "value": f"Observation: You take apple {i}."},
              {"from": "gpt", "value": "Thought: Now the box.\nAction: move apple to box"}]
    rejected = [{"from": "gpt", "value": "Thought: Not sure.\nAction: look around"},
                {"from": "human", "value": "Observation: You see a room."},
                {"from": "gpt", "value": "Thought: Wait.\nAction: wait"}]
    return {"id": f"p{i}", "prompt": prompt, "chosen": chosen, "rejected": rejected}


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("dpo") / "pairs.json"
    path.write_text(json.dumps([_pair(i) for i in range(8)]))
    return str(path)


def _masked_runs(ids, mask, tokenizer):
    runs, current = [], []
    for token, keep in zip(ids, mask):
        if keep:
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    if current:
        runs.append(tokenizer.decode(current))
    return runs


def test_only_the_agent_turns_of_each_continuation_are_trained(tiny_model_path):
    tokenizer = load_tokenizer(tiny_model_path)
    pair = _pair(3)
    encoded = tokenize_pair(pair, tokenizer)
    # The prompt, "OK" included, is context; it ends with the template's assistant header.
    prompt_text = tokenizer.decode(encoded["prompt_ids"])
    assert prompt_text.endswith("<|im_start|>assistant\n") and "put the apple 3" in prompt_text
    for side in ("chosen", "rejected"):
        runs = _masked_runs(encoded[f"{side}_ids"], encoded[f"{side}_mask"], tokenizer)
        agent_turns = [t["value"] for t in pair[side] if t["from"] == "gpt"]
        assert runs == [text + "<|im_end|>" for text in agent_turns]  # each with its end-of-turn token
        full = tokenizer.decode(encoded["prompt_ids"] + encoded[f"{side}_ids"])
        assert "Observation:" in full  # observations are in the sequence, but never in the mask


def test_truncation_keeps_the_prompt_end_and_the_continuation_start(tiny_model_path):
    tokenizer = load_tokenizer(tiny_model_path)
    encoded = tokenize_pair(_pair(0), tokenizer)
    full_prompt = list(encoded["prompt_ids"])
    cut, was_cut = truncate_pair(dict(encoded), max_length=len(full_prompt) - 5 + 12, max_prompt_length=len(full_prompt) - 5,
                                 max_target_length=None)
    assert was_cut and cut["prompt_ids"] == full_prompt[5:]
    assert cut["chosen_ids"] == encoded["chosen_ids"][:12] and len(cut["chosen_mask"]) == 12
    # A limit that leaves no agent token on a side drops the pair; with none left, training refuses.
    with pytest.raises(DataError, match="no train pair left"):
        build_dataset([_pair(0), _pair(1)], tokenizer, DPODataArguments(data_path="unused"),
                      max_length=len(full_prompt), name="train")


def _train_dpo(output, model_path, pairs_path, *extra):
    result = subprocess.run([sys.executable, DPO_SCRIPT, "--model_name_or_path", model_path,
                             "--ref_model_name_or_path", model_path, "--data_path", pairs_path,
                             "--output_dir", str(output), "--beta", str(BETA), "--learning_rate", "1e-3",
                             "--num_train_epochs", "3", "--per_device_train_batch_size", "4", "--seed", "7",
                             "--save_strategy", "no", "--report_to", "none", *extra],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=600,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def scored_pairs(tiny_model_path):
    """scored_pairs(path): each pair's (chosen, rejected) log-probabilities under the model at path."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(tiny_model_path)
    pairs = [_pair(i) for i in range(8)]
    return lambda path: pair_logprobs(AutoModelForCausalLM.from_pretrained(str(path)), tokenizer, pairs)


@pytest.fixture(scope="module")
def plain_dpo(tmp_path_factory, tiny_model_path, pairs_file):
    output = tmp_path_factory.mktemp("dpo") / "sigmoid"
    return output, _train_dpo(output, tiny_model_path, pairs_file)


def test_dpo_lowers_the_loss_and_widens_the_margin(plain_dpo, tiny_model_path, scored_pairs):
    output, result = plain_dpo
    assert "Computing reference log probs" in result.stderr  # the cached reference is the default
    marker = json.loads((output / COMPLETE_MARKER).read_text())
    assert marker["data"]["pairs"] == 8 and marker["data"]["beta"] == BETA
    assert marker["data"]["loss_type"] == ["sigmoid"]

    before, after = scored_pairs(tiny_model_path), scored_pairs(output)
    margins = [BETA * ((ac - bc) - (ar - br)) for (bc, br), (ac, ar) in zip(before, after)]
    losses = [-torch.nn.functional.logsigmoid(torch.tensor(m)).item() for m in margins]
    assert all(m > 0 for m in margins)  # chosen gained on rejected, relative to the reference
    assert sum(losses) / len(losses) < 0.6931 - 0.05  # DPO loss starts at log 2 (policy == reference)


def test_an_sft_term_holds_the_chosen_likelihood_up(plain_dpo, tmp_path, tiny_model_path, pairs_file, scored_pairs):
    """``--loss_type sigmoid sft`` (the evidence preset's DPO): the same run, seed and data as plain
    DPO, plus the chosen trajectories' NLL; it must end with the chosen side more likely."""
    output = tmp_path / "sigmoid_sft"
    _train_dpo(output, tiny_model_path, pairs_file, "--loss_type", "sigmoid", "sft")
    assert json.loads((output / COMPLETE_MARKER).read_text())["data"]["loss_type"] == ["sigmoid", "sft"]
    plain, with_sft = scored_pairs(plain_dpo[0]), scored_pairs(output)
    assert sum(c for c, _ in with_sft) > sum(c for c, _ in plain)


@pytest.mark.parametrize("content, message", [
    (json.dumps([{**_pair(0), "chosen": _pair(0)["chosen"][:2]}]), "(id 'p0'): chosen must end on an agent (gpt) turn"),
    (json.dumps([{**_pair(0), "prompt": _pair(0)["prompt"][:2]}]), "(id 'p0'): the prompt must end on a human turn"),
    (json.dumps([{**_pair(0), "rejected": _pair(0)["prompt"]}]), "(id 'p0'): rejected turn 0 is from 'human', expected 'gpt'"),
    (json.dumps([{"id": "p0", "prompt": _pair(0)["prompt"], "chosen": _pair(0)["chosen"]}]), "(id 'p0'): missing field 'rejected'"),
])
def test_bad_pairs_are_named_in_one_line(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataError) as error:
        load_preference_data(str(path))
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("content, message", [("[{", "not valid JSON"), ("[]", "no pairs")])
def test_trainer_cli_bad_input_exits_with_one_error_line(tmp_path, tiny_model_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = subprocess.run([sys.executable, DPO_SCRIPT, "--model_name_or_path", tiny_model_path, "--data_path", str(path),
                             "--output_dir", str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO_ROOT,
                            timeout=300)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]


def _collated_pairs(model_path, records):
    """A DPO batch as the trainer builds it: [chosen rows, rejected rows], right-padded."""
    from fastchat.train.train_dpo import AgentTurnPreferenceCollator

    tokenizer = load_tokenizer(model_path)
    examples = [truncate_pair(tokenize_pair(r, tokenizer), None, None, None)[0] for r in records]
    batch = AgentTurnPreferenceCollator(pad_token_id=tokenizer.pad_token_id).torch_call(examples)
    batch["labels"] = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    return batch


@pytest.mark.parametrize("share_prompts", [False, True])
def test_rows_without_padding_and_a_shared_prompt_give_the_padded_batch_log_probs_and_gradients(
        tiny_model_path, share_prompts):
    """eto.trainer_core.run_rows_unpadded_on_cpu: each row of a padded DPO batch alone (no mask, no
    padding), and with share_prompts each pair's common prompt once: the same per-token
    log-probabilities and gradients as the padded batch (fp32, the tiny model)."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from eto.trainer_core import MIN_SHARED_TOKENS, run_rows_unpadded_on_cpu

    records = [_pair(3), _pair(12)]
    records[1]["rejected"] = records[1]["rejected"][:1]  # sides of other lengths: the batch is padded
    batch = _collated_pairs(tiny_model_path, records)
    assert (batch["attention_mask"] == 0).any()
    calls = []

    def log_probs_and_grads(unpadded: bool):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
        add_fused_lm_head(model)
        backbone_forward = model.base_model.forward
        model.base_model.forward = lambda **kw: calls.append(kw["input_ids"].shape) or backbone_forward(**kw)
        if unpadded:
            run_rows_unpadded_on_cpu(model, share_prompts=share_prompts)
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"],
                    fused_lm_head=True, use_cache=False)
        (out.log_probs.sum(dim=1) * torch.tensor([1.0, 0.5, -1.0, -0.25])).sum().backward()  # a DPO-like mix
        return out.log_probs.detach(), {name: p.grad for name, p in model.named_parameters()}

    padded_logps, padded_grads = log_probs_and_grads(False)
    assert calls == [batch["input_ids"].shape]
    calls.clear()
    logps, grads = log_probs_and_grads(True)
    prompt = len(tokenize_pair(records[0], load_tokenizer(tiny_model_path))["prompt_ids"])
    if share_prompts:  # per pair: the prompt once, then each side's continuation
        assert prompt >= MIN_SHARED_TOKENS and len(calls) == 6 and calls[0][1] >= prompt
    else:  # one call per row, each as long as the row
        assert calls == [(1, int(n)) for n in batch["attention_mask"].sum(dim=1)]
    assert torch.allclose(logps, padded_logps, rtol=1e-5, atol=1e-5)
    for name, grad in padded_grads.items():  # float sums in another order: off by float rounding only
        assert (grads[name] - grad).abs().max() <= 1e-5 * grad.abs().max(), name


def test_generation_and_left_padding_run_the_batch_as_given(tiny_model_path):
    """Only training's right-padded forwards are split: a left-padded batch and generation with
    a cache reach the backbone as one call with their mask."""
    from transformers import AutoModelForCausalLM

    from eto.trainer_core import run_rows_unpadded_on_cpu

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    calls = []
    backbone_forward = model.base_model.forward
    model.base_model.forward = lambda **kw: calls.append(kw.get("attention_mask") is not None) or backbone_forward(**kw)
    run_rows_unpadded_on_cpu(model)
    ids = torch.tensor([[0, 0, 5, 6, 7], [4, 5, 6, 7, 8]])
    left_padded = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    model(input_ids=ids, attention_mask=left_padded, use_cache=False)
    assert calls == [True]
    calls.clear()
    model.generate(input_ids=ids, attention_mask=left_padded, max_new_tokens=2, do_sample=False,
                   pad_token_id=0)
    assert calls and all(calls)


def test_the_first_warmup_step_trains(tmp_path, tiny_model_path, pairs_file):
    """transformers' warmup gives step 0 the learning rate 0; eto.trainer_core.first_step_trains
    makes the warmup count from one. Two steps, one of them warmup: the first one moves the policy
    off the reference, so the second starts from a loss other than log 2."""
    output = tmp_path / "warmup"
    _train_dpo(output, tiny_model_path, pairs_file, "--num_train_epochs", "1", "--warmup_ratio", "0.5",
               "--lr_scheduler_type", "constant_with_warmup", "--logging_steps", "1")
    steps = [entry for entry in json.loads((output / COMPLETE_MARKER).read_text())["log_history"] if "loss" in entry]
    assert len(steps) == 2
    assert abs(steps[0]["loss"] - 0.693147) < 1e-4  # policy == reference before the first step
    assert abs(steps[1]["loss"] - 0.693147) > 1e-3
    assert steps[0]["learning_rate"] > 0


def test_the_saved_pairs_are_replaced_when_their_tokens_change(tmp_path, tiny_model_path, pairs_file):
    """share_on_disk keys the saved copy (beside which TRL caches the reference log-probs) by the
    tokenized pairs: the same pairs cut to another --max_length must not reuse the old copy."""
    from fastchat.train.train_dpo import share_on_disk

    tokenizer = load_tokenizer(tiny_model_path)
    records = load_preference_data(pairs_file)
    folder = str(tmp_path / "pairs")
    full, _ = build_dataset(records, tokenizer, DPODataArguments(data_path=pairs_file), None, "train")
    cut, _ = build_dataset(records, tokenizer, DPODataArguments(data_path=pairs_file), 90, "train")
    assert share_on_disk(full, folder)["chosen_ids"] == full["chosen_ids"]
    saved = os.path.getmtime(os.path.join(folder, "dataset_info.json"))
    assert share_on_disk(full, folder)["chosen_ids"] == full["chosen_ids"]
    assert os.path.getmtime(os.path.join(folder, "dataset_info.json")) == saved  # the same tokens: kept
    assert share_on_disk(cut, folder)["chosen_ids"] == cut["chosen_ids"] != full["chosen_ids"]


def test_a_snapshot_after_n_steps_is_the_model_an_n_step_run_gives(tmp_path, tiny_model_path, pairs_file):
    """--snapshot_steps (the dose-response's models from one run): with a constant learning rate
    after the warmup, the finished folder saved after step 2 of a 3-step run holds the weights a
    2-step run ends with, and it is servable (tokenizer, chat template, marker)."""
    import torch
    from safetensors.torch import load_file

    flags = ("--per_device_train_batch_size", "2", "--warmup_steps", "1", "--lr_scheduler_type", "constant_with_warmup")
    long_run, short_run = tmp_path / "three", tmp_path / "two"
    _train_dpo(long_run, tiny_model_path, pairs_file, *flags, "--max_steps", "3", "--snapshot_steps", "2")
    _train_dpo(short_run, tiny_model_path, pairs_file, *flags, "--max_steps", "2")
    snapshot = long_run / "three-step-2"
    assert json.loads((snapshot / COMPLETE_MARKER).read_text())["data"] == {"snapshot_step": 2}
    assert (snapshot / "tokenizer_config.json").exists()
    weights = [load_file(str(folder / "model.safetensors")) for folder in (snapshot, short_run, long_run)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])  # step 3 moved on


def test_bad_snapshot_steps_are_one_line(tmp_path, tiny_model_path, pairs_file):
    result = subprocess.run([sys.executable, DPO_SCRIPT, "--model_name_or_path", tiny_model_path, "--data_path",
                             pairs_file, "--output_dir", str(tmp_path / "x"), "--snapshot_steps", "10,zero"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: --snapshot_steps")
