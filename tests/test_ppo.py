"""PPO (fastchat/train/train_ppo.py): episodes as training sequences, in-process batched
generation, and TRL's update on real episodes.

Episodes are real: ScienceWorld plays them, with the tiny randomly initialised Llama of conftest
(its replies never earn reward) or the environment's own expert (which solves the task). The
on-policy loop as run_eto.sh drives it (rollouts, checkpoints, resume) is in test_eto_loop.py.
"""

import json
import subprocess
import sys
import threading

import pytest
import torch

from eval_agent.agents.expert_agent import ExpertAgent
from eval_agent.config import load_task_config
from eval_agent.registry import ENVS, TASKS
from eval_agent.runner import run_episode
from eto.records import to_messages
from fastchat.train.train_ppo import (EnvironmentArguments, EnvironmentRollouts, PPOTrainingArguments, encode_episode,
                                      task_reward)

from conftest import REPO_ROOT, needs_vllm

STEP_LIMIT = 4


@pytest.fixture(scope="module")
def task_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("ppo") / "sciworld_one.json"
    limits = dict.fromkeys(["find-non-living-thing", "lifespan-longest-lived",
                            "lifespan-longest-lived-then-shortest-lived", "lifespan-shortest-lived"], STEP_LIMIT)
    path.write_text(json.dumps({"extends": "sciworld_demo", "max_tasks": {"train": 1}, "max_steps": limits}))
    return str(path)


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_path), AutoTokenizer.from_pretrained(tiny_model_path)


@pytest.fixture(scope="module")
def episodes(task_config, tiny, tmp_path_factory):
    """One train task played by the tiny policy (with an in-context example) and by the expert."""
    model, tokenizer = tiny
    rollouts = EnvironmentRollouts(EnvironmentArguments(task=task_config, num_examples=1, prompts="ours",
                                                        max_new_tokens=24, rollout_engine="hf"),
                                   tokenizer, temperature=1.0, top_p=1.0, max_length=4096,
                                   save_dir=str(tmp_path_factory.mktemp("rollouts")))
    try:
        torch.manual_seed(0)
        policy = rollouts.play(rollouts.task_ids, model)[0]
    finally:
        rollouts.close()
    config, env_name = load_task_config(task_config, expert=True)
    task = TASKS[env_name].load_tasks("train", config)[0]
    env = ENVS[env_name](config)
    try:
        expert = run_episode(task, env, ExpertAgent().bind(env), env_name, num_examples=1, prompts="ours")
    finally:
        env.close()
    return policy, expert


def test_an_episode_trains_only_the_agents_replies_to_its_task(episodes, tiny):
    _, tokenizer = tiny
    for record in episodes:
        encoded = encode_episode(tokenizer, record, max_length=None)
        completion, mask = encoded["completion_ids"], encoded["env_mask"]
        assert len(completion) == len(mask) and mask[0] == 1 and mask[-1] == 1
        replies, run = [], []
        for token, keep in zip(completion + [None], mask + [0]):
            if keep:
                run.append(token)
            elif run:
                replies.append(tokenizer.decode(run))
                run = []
        task_turn = record["meta"]["task_turn"]
        expected = [m["content"] for m in to_messages(record["conversations"])[task_turn:] if m["role"] == "assistant"]
        assert task_turn > 3  # the in-context example's replies are in the prompt, never trained on
        assert len(replies) == len(expected) == record["meta"]["steps"]
        for reply, text in zip(replies, expected):
            assert reply == text + "<|im_end|>"  # each reply with its end-of-turn token, as SFT
        prompt = tokenizer.decode(encoded["prompt_ids"])
        task_text = record["conversations"][task_turn]["value"]
        assert prompt.endswith(task_text + "<|im_end|>\n<|im_start|>assistant\n")


def test_an_episode_is_cut_to_the_length_limit_and_keeps_a_token(episodes, tiny):
    _, tokenizer = tiny
    full = encode_episode(tokenizer, episodes[1], max_length=None)
    prompt_length = len(full["prompt_ids"])
    cut = encode_episode(tokenizer, episodes[1], max_length=prompt_length + 5)
    assert cut["prompt_ids"] == full["prompt_ids"] and cut["completion_ids"] == full["completion_ids"][:5]
    assert len(encode_episode(tokenizer, episodes[1], max_length=10)["completion_ids"]) == 1


def test_concurrent_episodes_are_answered_by_one_batched_generate(tiny):
    from eval_agent.agents.local_agent import LocalModelAgent, TransformersGenerator

    model, tokenizer = tiny
    agent = LocalModelAgent({"max_new_tokens": 12, "temperature": 0.0, "stop": ["\nObservation:"]},
                            TransformersGenerator(model, tokenizer), tokenizer)
    calls, real_generate = [], model.generate

    def counting_generate(**kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return real_generate(**kwargs)

    model.generate = counting_generate
    replies, all_in_play = {}, threading.Barrier(3)

    def episode(k):
        with agent.playing():
            all_in_play.wait(timeout=60)  # else the first thread may generate before the others start
            replies[k] = agent.generate([{"role": "user", "content": f"task {k}: " + "word " * k}]).text

    try:
        threads = [threading.Thread(target=episode, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        del model.generate
    assert sorted(replies) == [0, 1, 2] and all("\nObservation:" not in r for r in replies.values())
    assert calls == [3]  # the three requests shared one generate call


def test_a_seeded_episode_samples_the_same_reply_whatever_shares_its_batch(tiny):
    """PPO on several ranks plays the episodes one process plays: a seeded reply depends on its
    prompt and seed, not on the other rows of the batched generate (their number, their padding)."""
    from eval_agent.agents.local_agent import Sampling, TransformersGenerator

    model, tokenizer = tiny
    generate = TransformersGenerator(model, tokenizer)
    sampling = Sampling(max_new_tokens=12, temperature=1.0, top_p=0.9, stop=[], stop_token_ids=[tokenizer.eos_token_id])
    short, long = tokenizer("task 1").input_ids, tokenizer("task 2: " + "word " * 20).input_ids
    alone = generate([short], sampling, seeds=[7])
    beside = generate([long, short, short], sampling, seeds=[5, 7, 8])
    assert beside[1] == alone[0]
    assert beside[2] != beside[1]  # another seed, another sample (12 tokens of a random model)
    assert generate([short], sampling, seeds=[7]) == alone  # and the same seed again, the same reply


VLLM_SYNC = """
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from eval_agent.agents.local_agent import Sampling, TransformersGenerator, VLLMGenerator
path = sys.argv[1]
tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
engine = VLLMGenerator(path)
prompt = [tokenizer("Thought: I should look around first.").input_ids]
greedy = Sampling(max_new_tokens=16, temperature=0.0, top_p=1.0, stop=[], stop_token_ids=[tokenizer.eos_token_id])
before = engine(prompt, greedy)
with torch.no_grad():  # another policy: every weight changed
    for p in model.parameters():
        p.add_(torch.randn_like(p) * 0.2)
engine.load_weights(model)
after, expected = engine(prompt, greedy), TransformersGenerator(model, tokenizer)(prompt, greedy)
sampled = Sampling(max_new_tokens=12, temperature=1.0, top_p=0.9, stop=[], stop_token_ids=[tokenizer.eos_token_id])
other = tokenizer("task 2: " + "word " * 20).input_ids
alone, beside = engine(prompt, sampled, seeds=[7]), engine([other, prompt[0], prompt[0]], sampled, seeds=[5, 7, 8])
seeded = alone[0] == beside[1] and beside[1] != beside[2]  # a seeded request samples the same beside others
print("RESULT", before != after, after == expected, seeded, repr(after), repr(expected))
"""


@needs_vllm
def test_the_vllm_rollout_engine_generates_with_the_weights_it_was_given(tiny_model_path):
    # A child process: the in-process engine changes process-wide settings (env, thread binding).
    run = subprocess.run([sys.executable, "-c", VLLM_SYNC, tiny_model_path], capture_output=True, text=True,
                         timeout=600, cwd=REPO_ROOT)
    result = [line for line in run.stdout.splitlines() if line.startswith("RESULT")]
    assert result, run.stdout[-2000:] + run.stderr[-3000:]
    changed, same_as_transformers, seeded = result[0].split()[1:4]
    assert changed == "True"  # the new weights are in use ...
    assert same_as_transformers == "True", result[0]  # ... and decode greedily as transformers does
    assert seeded == "True"  # PPO's per-episode seeds hold in vLLM's batches too


def _one_step(model, tokenizer, records, output_dir):
    """One TRL GRPO step whose rollout returns ``records`` (real episodes of one task) as PPO does."""
    from datasets import Dataset
    from trl import GRPOTrainer

    def replay(prompts, trainer):
        encoded = [encode_episode(tokenizer, r, trainer.args.max_length) for r in records]
        return {"prompt_ids": [e["prompt_ids"] for e in encoded], "completion_ids": [e["completion_ids"] for e in encoded],
                "env_mask": [e["env_mask"] for e in encoded], "logprobs": None,
                "episode_reward": [r["meta"]["reward"] for r in records]}

    args = PPOTrainingArguments(output_dir=str(output_dir), num_generations=len(records),
                                per_device_train_batch_size=len(records), gradient_accumulation_steps=1, max_steps=1,
                                learning_rate=1e-3, beta=0.0, weight_decay=0.0, save_strategy="no", report_to="none",
                                max_completion_length=4096, max_length=4096)
    trainer = GRPOTrainer(model=model, args=args, reward_funcs=[task_reward], processing_class=tokenizer,
                          train_dataset=Dataset.from_dict({"prompt": [records[0]["meta"]["id"]]}), rollout_func=replay)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer.train()
    return sum(not torch.equal(before[name], p.detach()) for name, p in model.named_parameters())


def test_a_step_moves_the_policy_only_when_a_tasks_episodes_differ_in_reward(episodes, tiny_model_path, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    policy, expert = episodes
    assert expert["meta"]["reward"] > policy["meta"]["reward"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    # Same reward for every episode of the task: zero advantage, no update (no KL term, no decay).
    assert _one_step(model, tokenizer, [policy, policy], tmp_path / "same") == 0
    # The expert's success against the policy's failure: the policy moves.
    assert _one_step(model, tokenizer, [expert, policy], tmp_path / "differ") > 0
