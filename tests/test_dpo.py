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
