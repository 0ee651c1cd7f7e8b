"""A policy that generates in this process, from weights held in memory.

Used where the policy changes between episodes and serving it would mean restarting servers every
time: the on-policy rollouts of PPO (``fastchat/train/train_ppo.py``). The prompt is the same text
FastChat serves (``eto.chat_format.prompt_text``: the model folder's chat template), tokenized as
the worker does, and a reply ends where a served one ends (the template's end-of-turn token and
the task config's stop strings), so a rollout is an episode as evaluation plays it.

Episodes run in threads (``eval_agent.runner.run_episode``), each with its own env. Generation is
batched in lockstep: every episode in play (``with agent.playing():``) asks for its next reply,
and once all of them wait, one batched call answers them together, through one of two engines:

- ``VLLMGenerator``: a vLLM engine inside this process, with prefix caching (a turn computes only
  its new tokens; the conversation before it is cached), whose weights are replaced by the trained
  model's before each rollout (``load_weights``). The engine the demo uses where vLLM runs.
- ``TransformersGenerator``: ``model.generate`` on the trained model itself (left-padded batch,
  every turn recomputes the whole conversation). Needs nothing but transformers.

An episode played ``with agent.playing(seed=s):`` samples from a random stream of its own (seeded
by ``s`` and the turn), so what it samples does not depend on which other episodes share its
batch, or on which process plays it: PPO on several ranks then plays the episodes one process
would. Without a seed, the engine's shared random stream is used.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from eval_agent.agents.base import Agent, ContextLimitExceeded, Message, Reply
from eval_agent.agents.fastchat_agent import stop_strings
from eto.chat_format import prompt_text, stop_tokens


@dataclass
class Sampling:
    max_new_tokens: int
    temperature: float
    top_p: float
    stop: Sequence[str]
    stop_token_ids: Sequence[int]


def turn_seed(episode_seed: int, turn: int) -> int:
    """The seed of one reply of a seeded episode."""
    return (episode_seed * 1_000_003 + turn) % (2**63 - 1)


class SeededSampling:
    """A ``generate`` logits processor that samples each row from a random stream of its own: the
    temperature and top-p warpers, then Gumbel noise from the row's generator, so that greedy
    decoding's argmax is a sample of the warped distribution (the Gumbel-max trick). A row's draws
    depend on its seed alone, not on the batch around it."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float):
        import torch
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        self.generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
        self.warpers = [TemperatureLogitsWarper(temperature)] + ([TopPLogitsWarper(top_p)] if top_p < 1.0 else [])

    def __call__(self, input_ids, scores):
        import torch

        for warp in self.warpers:
            scores = warp(input_ids, scores)
        uniform = torch.stack([torch.rand(scores.shape[-1], generator=g) for g in self.generators])
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1.0 - 1e-7)))
        return scores.float() + gumbel.to(scores.device)


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cuts = [text.find(s) for s in stop if s in text]
    return text[: min(cuts)] if cuts else text


class TransformersGenerator:
    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.context_length = int(getattr(model.config, "max_position_embeddings", 0) or 0) or 10**9

    def __call__(self, prompts: List[List[int]], sampling: Sampling,
                 seeds: Optional[Sequence[int]] = None) -> List[str]:
        import torch
        from transformers import LogitsProcessorList

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else sampling.stop_token_ids[0]
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])  # left padding
        attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        device = next(self.model.parameters()).device
        sample = sampling.temperature > 0
        seeded = sample and seeds is not None
        processors = LogitsProcessorList([SeededSampling(seeds, sampling.temperature, sampling.top_p)] if seeded else [])
        sample = sample and not seeded  # a seeded sample is the argmax of noised scores
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                out = self.model.generate(
                    input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                    max_new_tokens=sampling.max_new_tokens, do_sample=sample,
                    temperature=sampling.temperature if sample else None, top_p=sampling.top_p if sample else None,
                    top_k=0 if sample else None,  # no top-k cut: sample from the distribution that is trained
                    eos_token_id=list(sampling.stop_token_ids), pad_token_id=pad, logits_processor=processors,
                    stop_strings=list(sampling.stop) or None, tokenizer=self.tokenizer)
        finally:
            self.model.train(was_training)
        texts = self.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        return [cut_at_stop(text, sampling.stop) for text in texts]


class VLLMGenerator:
    """A vLLM engine in this process, started from ``model_path`` (same architecture and tokenizer
    as the trained model), float32 on CPU as the served worker (``fastchat/serve/vllm_worker.py``)."""

    def __init__(self, model_path: str, gpu_memory_utilization: float = 0.3):
        # In-process engine core: its weights can then be replaced from this process's tensors.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        from eto.engines import CPU_KV_CACHE_BYTES, default_dtype, has_cuda

        on_gpu = has_cuda()
        kwargs = {"gpu_memory_utilization": gpu_memory_utilization} if on_gpu else {
            "kv_cache_memory_bytes": CPU_KV_CACHE_BYTES, "enforce_eager": True}
        if not on_gpu:  # compute on every core, as the served worker does (fastchat/serve/vllm_worker.py)
            os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        from vllm import LLM

        self.llm = LLM(model=model_path, dtype=default_dtype(on_gpu), enable_prefix_caching=True, seed=0, **kwargs)
        self.context_length = self.llm.llm_engine.model_config.max_model_len

    def load_weights(self, model) -> None:
        """Copy ``model``'s weights (a plain transformers model, same architecture) into the engine."""
        weights = [(name, tensor.detach()) for name, tensor in model.state_dict().items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(weights)})
        self.llm.reset_prefix_cache()  # cached prefixes were computed with the old weights

    def __call__(self, prompts: List[List[int]], sampling: Sampling,
                 seeds: Optional[Sequence[int]] = None) -> List[str]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = [SamplingParams(max_tokens=sampling.max_new_tokens, temperature=sampling.temperature,
                                 top_p=sampling.top_p if sampling.temperature > 0 else 1.0, seed=seed,
                                 stop=list(sampling.stop) or None, stop_token_ids=list(sampling.stop_token_ids))
                  for seed in (seeds if seeds is not None else [None] * len(prompts))]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)
        return [cut_at_stop(out.outputs[0].text, sampling.stop) for out in outputs]


class LocalModelAgent(Agent):
    def __init__(self, config: dict, generator, tokenizer):
        super().__init__(config, "local")
        self.generator, self.tokenizer = generator, tokenizer
        stop_str, stop_ids = stop_tokens(tokenizer)
        self.sampling = Sampling(self.max_new_tokens, self.temperature, self.top_p,
                                 stop_strings(stop_str, self.stop), stop_ids)
        self.max_retries = 0  # a failure here is a bug, not a flaky server: no retries
        self._cond = threading.Condition()
        self._playing = 0
        self._waiting: List[Dict] = []
        self._episode = threading.local()  # each episode plays in a thread of its own

    @contextlib.contextmanager
    def playing(self, seed: Optional[int] = None):
        """Count an episode as in play while the block runs (its thread will ask for replies);
        ``seed``: sample its replies from a random stream of its own."""
        self._episode.seed, self._episode.turn = seed, 0
        with self._cond:
            self._playing += 1
        try:
            yield self
        finally:
            with self._cond:
                self._playing -= 1
                self._generate_if_all_wait()

    def _attempt(self, messages: List[Message], attempt: int) -> Reply:
        start = time.perf_counter()
        ids = self.tokenizer(prompt_text(self.tokenizer, messages)).input_ids
        if len(ids) + self.max_new_tokens > self.generator.context_length:
            raise ContextLimitExceeded(f"prompt of {len(ids)} tokens + {self.max_new_tokens} new tokens > "
                                       f"context {self.generator.context_length}")
        seed = getattr(self._episode, "seed", None)
        request = {"ids": ids, "seed": None if seed is None else turn_seed(seed, self._episode.turn)}
        self._episode.turn = getattr(self._episode, "turn", 0) + 1
        with self._cond:
            self._waiting.append(request)
            self._generate_if_all_wait()
            while "text" not in request and "error" not in request:
                self._cond.wait()
        if "error" in request:
            raise request["error"]
        return Reply(request["text"].strip(), {"generate_s": time.perf_counter() - start})

    def _generate_if_all_wait(self) -> None:
        """Called with the lock held. Every other episode in play is blocked waiting for its reply
        (or has ended), so generating under the lock holds nobody up."""
        if not self._waiting or len(self._waiting) < self._playing:
            return
        batch, self._waiting = self._waiting, []
        seeds = [r["seed"] for r in batch]
        try:
            texts = self.generator([r["ids"] for r in batch], self.sampling,
                                   seeds=None if None in seeds else seeds)
            for request, text in zip(batch, texts):
                request["text"] = text
        except Exception as error:  # noqa: BLE001 - handed to every waiting episode
            for request in batch:
                request["error"] = error
        self._cond.notify_all()
