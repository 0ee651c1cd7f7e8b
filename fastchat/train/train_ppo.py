"""PPO baseline: the policy plays the train tasks in the environment and is optimised for the
final task reward, on-policy, with TRL.

    python fastchat/train/train_ppo.py --model_name_or_path checkpoints/eto-sciworld-sft \\
        --task sciworld --output_dir checkpoints/eto-sciworld-ppo --num_generations 4 \\
        --per_device_train_batch_size 4 --gradient_accumulation_steps 8 --learning_rate 1e-6

Rollouts: every optimiser step, ``gradient_accumulation_steps x per_device_train_batch_size /
num_generations`` train tasks are each played ``num_generations`` times by the current policy, in
the same environment classes, prompts and chat format as evaluation (``eval_agent.runner.
run_episode`` with ``eval_agent.agents.local_agent.LocalModelAgent``, which generates in this
process, batched across the episodes in play: ``--rollout_engine vllm``, an in-process vLLM engine
that takes the trained weights before each step, or ``hf``, transformers' ``generate`` on the
trained model), sampling at ``--temperature``. An episode is one
sequence: its opening (instruction, task) is the prompt, and everything after is the completion,
in which only the agent's replies (with their end-of-turn token) are trained on; observations
are masked (TRL's ``env_mask``), as in SFT and DPO. Its reward is the task's final reward.

Value and advantage: no value network. An episode's advantage is its reward minus the mean
reward of the episodes of the same task in the batch, divided by their standard deviation
(group-relative, as in GRPO, Shao et al., 2024), the same for every token of the episode; a task
whose episodes all score alike contributes no gradient. The loss is PPO's clipped surrogate
(``--epsilon``, 0.2; ``--num_iterations`` passes over each batch of rollouts), averaged over the
agent's tokens, plus ``--beta`` times a KL penalty to the starting policy. With one pass the
ratio stays 1 and the clip never binds (a policy-gradient step with a per-task baseline). This is TRL's
``GRPOTrainer`` with a ``rollout_func``: TRL (1.16, pinned here) no longer ships a PPOTrainer
with a critic, and its GRPO trainer is the maintained PPO-family trainer that takes multi-turn
environment rollouts.

Every episode samples from a random stream of its own, seeded by ``--seed``, the step and its
place in the step's rollouts: with the same global batch, PPO on several ranks (torchrun) plays
the episodes one process plays, and trains to the same weights.

Each step's episodes are saved in ``<output_dir>/rollouts/step_N.json``. A checkpoint per
``--save_steps`` lets a killed run resume; the finished model is saved like SFT's and DPO's.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from trl import GRPOConfig, GRPOTrainer

from eto.io import write_json_atomic
from eto.records import to_messages
from eto.trainer_core import (ModelArguments, ProjectTrainingDefaults, TrainingJob, load_model_and_tokenizer, lora_config,
                              run_reporting_full_disk, run_training)


@dataclass
class EnvironmentArguments:
    task: str = field(metadata={"help": "eval_agent task config (sciworld, alfworld_demo, ...) or a .json path"})
    split: str = field(default="train", metadata={"help": "the split whose tasks are played"})
    max_tasks: Optional[int] = field(default=None, metadata={"help": "only the first N tasks of the split"})
    num_examples: Optional[int] = field(default=None, metadata={
        "help": "in-context examples in the prompt (default: the task config's); as in evaluation"})
    prompts: Optional[str] = field(default=None, metadata={
        "help": "instruction and examples: ours, original or auto (default: the task config's)"})
    max_new_tokens: int = field(default=512, metadata={"help": "reply length limit (tokens), as in evaluation"})
    agent_config: str = field(default="fastchat", metadata={
        "help": "eval_agent model config whose stop strings end a reply (configs/model/<name>.json)"})
    episodes_in_flight: int = field(default=0, metadata={
        "help": "episodes played at once (each with its own env); 0: every episode of a step"})
    rollout_engine: str = field(default="auto", metadata={
        "help": "what generates the rollouts: vllm (an engine in this process, prefix caching, weights "
                "copied in before each step), hf (transformers' generate on the trained model) or auto "
                "(vllm where it runs, in a single-process run without LoRA)",
        "choices": ["auto", "vllm", "hf"]})


@dataclass
class PPOTrainingArguments(ProjectTrainingDefaults, GRPOConfig):
    """``GRPOConfig`` with the trainers' shared project defaults and these settings (see the module
    docstring): groups of 4 episodes per task, sampling at 0.7 (the project's Best-of-N and RFT
    temperature), a KL penalty of 0.04 to the starting policy, a checkpoint every step."""

    num_generations: Optional[int] = field(default=4, metadata={"help": "episodes per task in a step (the group)"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature of the rollouts"})
    beta: float = field(default=0.04, metadata={"help": "KL penalty coefficient (to the starting policy)"})
    learning_rate: float = field(default=1e-6, metadata={"help": "AdamW learning rate"})
    save_strategy: str = field(default="steps", metadata={"help": "when to write checkpoints (no, steps, epoch)"})
    save_steps: float = field(default=1, metadata={"help": "a checkpoint every N steps (a rollout batch each)"})
    max_completion_length: Optional[int] = field(default=None, metadata={
        "help": "tokens of an episode after its prompt (default: --model_max_length)"})
    log_completions: bool = field(default=False, metadata={"help": "print sampled episodes (they are saved anyway)"})


# ------------------------------------------------------------------------------ episodes
def agent_turn_runs(labels: Sequence[int]) -> List[Tuple[int, int]]:
    """[start, end) of each run of trained (agent) tokens."""
    runs, start = [], None
    for i, label in enumerate(list(labels) + [-100]):
        if label != -100 and start is None:
            start = i
        elif label == -100 and start is not None:
            runs.append((start, i))
            start = None
    return runs


def encode_episode(tokenizer, record: Dict, max_length: Optional[int]) -> Dict[str, List[int]]:
    """An episode as one sequence: ``prompt_ids`` (everything before the task's first reply),
    ``completion_ids`` (the rest, cut to ``max_length`` tokens in all) and ``env_mask`` (1 on the
    agent's own tokens of the task, 0 on observations and chat-template text)."""
    from eto.chat_format import encode_for_training, render

    messages = to_messages(record["conversations"])
    while messages and messages[-1]["role"] != "assistant":  # the last observation is never acted on
        messages.pop()
    task_turn = record["meta"].get("task_turn") or 0
    before_task = sum(1 for m in messages[:task_turn] if m["role"] == "assistant")  # "OK", example replies
    if len(messages) <= task_turn:  # no reply to the task (its prompt did not fit): nothing to learn
        ids = tokenizer(render(tokenizer, to_messages(record["conversations"])), add_special_tokens=False).input_ids
        return {"prompt_ids": ids[:-1], "completion_ids": ids[-1:], "env_mask": [0]}
    encoded = encode_for_training(tokenizer, messages)
    ids, labels = encoded["input_ids"], encoded["labels"]
    runs = agent_turn_runs(labels)
    start, end = runs[before_task][0], runs[-1][1]  # the text after the last end-of-turn is never generated
    if max_length is not None:
        end = max(start + 1, min(end, max_length))
    return {"prompt_ids": ids[:start], "completion_ids": ids[start:end],
            "env_mask": [int(label != -100) for label in labels[start:end]]}


class EnvironmentRollouts:
    """TRL's ``rollout_func``: plays each prompt (a task id) as an episode with the current policy."""

    def __init__(self, env_args: EnvironmentArguments, tokenizer, temperature: float, top_p: float,
                 max_length: Optional[int], save_dir: str, model_path: Optional[str] = None):
        from eval_agent.config import load_config, load_task_config
        from eval_agent.prompt import resolve_prompts
        from eval_agent.registry import ENVS, TASKS
        from eval_agent.runner import EnvPool

        self.task_config, self.env_name = load_task_config(env_args.task)
        tasks = TASKS[self.env_name].load_tasks(env_args.split, self.task_config)[: env_args.max_tasks]
        if not tasks:
            raise ValueError(f"{env_args.task} has no {env_args.split} tasks")
        self.tasks = {task.task_id: task for task in tasks}
        self.num_examples = (int(self.task_config.get("num_examples", 1)) if env_args.num_examples is None
                             else env_args.num_examples)
        self.prompts = resolve_prompts(self.env_name, env_args.prompts or self.task_config.get("prompts", "ours"))
        self.agent_config = {**load_config("model", env_args.agent_config), "temperature": temperature,
                             "top_p": top_p, "max_new_tokens": env_args.max_new_tokens}
        self.tokenizer, self.max_length, self.save_dir = tokenizer, max_length, save_dir
        self.in_flight = env_args.episodes_in_flight
        self.engine, self.model_path, self.vllm = env_args.rollout_engine, model_path, None
        if self.engine not in ("vllm", "hf"):
            raise ValueError(f"rollout engine must be vllm or hf, got {self.engine!r}")
        if self.engine == "vllm" and not model_path:
            raise ValueError("the vllm rollout engine needs the model folder to start from")
        self.pool = EnvPool(lambda: ENVS[self.env_name](self.task_config), size=10**6)
        os.makedirs(save_dir, exist_ok=True)

    @property
    def task_ids(self) -> List[str]:
        return list(self.tasks)

    def generator(self, model):
        """What generates with ``model``'s current weights."""
        from eval_agent.agents.local_agent import TransformersGenerator, VLLMGenerator

        if self.engine == "hf":
            return TransformersGenerator(model, self.tokenizer)
        if self.vllm is None:
            self.vllm = VLLMGenerator(self.model_path)
        self.vllm.load_weights(model)
        return self.vllm

    def play(self, task_ids: Sequence[str], model, seeds: Optional[Sequence[int]] = None) -> List[Dict]:
        from eval_agent.agents.local_agent import LocalModelAgent
        from eval_agent.runner import run_episode

        agent = LocalModelAgent(self.agent_config, self.generator(model), self.tokenizer)

        def one(task_id: str, seed: Optional[int]) -> Dict:
            env = self.pool.acquire()
            try:
                with agent.playing(seed):
                    return run_episode(self.tasks[task_id], env, agent, self.env_name, self.num_examples,
                                       prompts=self.prompts)
            finally:
                self.pool.release(env)

        with ThreadPoolExecutor(max_workers=self.in_flight or len(task_ids)) as executor:
            records = list(executor.map(one, task_ids, seeds or [None] * len(task_ids)))
        for record in records:
            if record["meta"]["error"]:  # the policy is in this process: an error is a bug, not noise
                raise RuntimeError(f"episode {record['meta']['id']} failed: {record['meta']['error']}")
        return records

    def __call__(self, prompts: List[str], trainer) -> Dict[str, list]:
        from trl.distributed import DistributedBackend
        from trl.models.utils import unwrap_model_for_generation

        # As TRL generates in GRPOTrainer: unwrapped, ZeRO-3 parameters gathered, FSDP shards summoned.
        with (unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                          gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
                                          gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs) as model,
              DistributedBackend(trainer.accelerator).summon_full_params(trainer.model_wrapped, recurse=False)):
            step = trainer.state.global_step + 1
            # TRL hands each rank an equal, contiguous share of the step's episodes (rank 0 the first),
            # so an episode's place in the step is the same on any number of ranks, and so is its seed.
            first = trainer.accelerator.process_index * len(prompts)
            records = self.play(prompts, model, [episode_seed(trainer.args.seed, step, first + i)
                                                 for i in range(len(prompts))])
        rank = f"_rank{trainer.accelerator.process_index}" if trainer.accelerator.num_processes > 1 else ""
        write_json_atomic(os.path.join(self.save_dir, f"step_{step}{rank}.json"), records)
        rewards = [float(r["meta"]["reward"]) for r in records]
        print(f"step {step}: {len(records)} episodes, average reward {sum(rewards) / len(rewards):.4f}, "
              f"success rate {sum(bool(r['meta']['success']) for r in records) / len(records):.4f}", flush=True)
        encoded = [encode_episode(self.tokenizer, r, self.max_length) for r in records]
        return {"prompt_ids": [e["prompt_ids"] for e in encoded],
                "completion_ids": [e["completion_ids"] for e in encoded],
                "env_mask": [e["env_mask"] for e in encoded],
                "logprobs": None,  # recomputed by the trainer: the sampler holds the same weights
                "episode_reward": rewards}

    def close(self) -> None:
        self.pool.close()


def episode_seed(seed: int, step: int, place: int) -> int:
    """The random stream of the episode at ``place`` in optimizer step ``step``'s rollouts."""
    return ((seed * 1_000_003 + step) * 1_000_003 + place) % (2**63 - 1)


def task_reward(completions, episode_reward: List[float], **kwargs) -> List[float]:
    """The reward TRL optimises: each episode's final task reward (from the rollout)."""
    return list(episode_reward)


# ------------------------------------------------------------------------------ main
def rollout_engine(engine: str, model_args: ModelArguments, args) -> str:
    """``auto`` -> vllm where it runs, for one process holding plain full weights (no LoRA, FSDP or
    DeepSpeed: the engine copies them by name; an engine per rank beside shards is untested), else hf."""
    from eto.engines import resolve_engine

    if engine == "vllm" and model_args.lora_r > 0:
        raise ValueError("--rollout_engine vllm takes full weights; use hf with --lora_r")
    if engine == "auto":
        plain = (int(os.environ.get("WORLD_SIZE", "1")) == 1 and model_args.lora_r == 0
                 and not args.fsdp and not args.deepspeed)
        return resolve_engine("auto") if plain else "hf"
    return engine


def prepare(model_args: ModelArguments, env_args: EnvironmentArguments, args: PPOTrainingArguments) -> TrainingJob:
    from datasets import Dataset

    from eval_agent.config import load_task_config

    load_task_config(env_args.task)  # a bad task config fails before the model loads
    model, tokenizer = load_model_and_tokenizer(model_args, args)
    if args.max_completion_length is None:
        args.max_completion_length = args.max_length
    env_args.rollout_engine = rollout_engine(env_args.rollout_engine, model_args, args)
    print(f"rollouts: {env_args.rollout_engine}", flush=True)
    rollouts = EnvironmentRollouts(env_args, tokenizer, args.temperature, args.top_p, args.max_length,
                                   os.path.join(args.output_dir, "rollouts"), model_args.model_name_or_path)

    def make_trainer():
        # The dataset is the task ids; TRL repeats each num_generations times and hands a step's
        # worth to the rollout function.
        return GRPOTrainer(model=model, args=args, reward_funcs=[task_reward],
                           train_dataset=Dataset.from_dict({"prompt": rollouts.task_ids}),
                           processing_class=tokenizer, peft_config=lora_config(model_args), rollout_func=rollouts)

    def facts(result) -> dict:
        return {"tasks": len(rollouts.task_ids), "train_loss": round(result.training_loss, 4), "beta": args.beta,
                "num_generations": args.num_generations, "temperature": args.temperature, "steps": result.global_step}

    return TrainingJob(tokenizer, make_trainer, facts, summary=lambda result: f"{result.global_step} steps",
                       close=rollouts.close)


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_training((ModelArguments, EnvironmentArguments, PPOTrainingArguments), argv, __doc__, prepare,
                        input_errors=(ValueError, FileNotFoundError, KeyError))


if __name__ == "__main__":
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is marked experimental in TRL
    sys.exit(run_reporting_full_disk(main))
