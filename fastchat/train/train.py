"""Supervised fine-tuning (behavioural cloning) of a chat model on agent trajectories.

    python fastchat/train/train.py --model_name_or_path models/SmolLM2-135M-Instruct \\
        --data_path data/sciworld_sft.json --output_dir models/sciworld-sft \\
        --num_train_epochs 3 --learning_rate 2e-5 --model_max_length 4096

    torchrun --nproc_per_node 8 fastchat/train/train.py ... --bf16 True --tf32 True \\
        --fsdp "full_shard auto_wrap" --fsdp_transformer_layer_cls_to_wrap LlamaDecoderLayer
    (or --deepspeed fastchat/train/configs/ds_zero3.json)

The command line of the original ETO ``run_eto.sh`` works as it is: flags that transformers
has since renamed are translated (``--evaluation_strategy``, ``--warmup_ratio``,
``--model_max_length``, ``--fsdp_transformer_layer_cls_to_wrap``), and GPU-only flags are
dropped with a note on a machine without CUDA. Any option of TRL's ``SFTConfig`` (and so of
transformers' ``TrainingArguments``) is accepted too.

Loss falls on the agent's turns only, each with the end-of-turn token its chat template writes
(``fastchat.chat_format.encode_for_training``, the same template the FastChat worker serves).
Conversations longer than ``--model_max_length`` are truncated (or dropped, ``--overlong drop``)
and counted. No compute goes to padding: with flash attention, conversations are packed into
padding-free rows (TRL's best-fit-decreasing packing, position ids restarting per conversation,
so attention never crosses conversations); with other attention kernels (CPU), batches hold
conversations of similar length (``--packing True/False`` forces either). ``--lora_r 16`` trains a LoRA adapter (PEFT) and merges it on save. The output folder
holds the model, tokenizer and chat template, ready for ``fastchat.serve.model_worker``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

if __package__ in (None, ""):  # run as a script (torchrun fastchat/train/train.py): import from the repo
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from trl import SFTConfig  # noqa: E402

from fastchat.train.sft_data import SFTDataError, load_sft_data, to_messages  # noqa: E402

COMPLETE_MARKER = "eto_training.json"  # written last: the folder holds a finished model


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "HF causal chat model (a folder or a hub name)"})
    lora_r: int = field(default=0, metadata={"help": "LoRA rank; 0 fine-tunes every weight"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input"})
    lora_target_modules: str = field(default="all-linear", metadata={
        "help": "comma-separated module names to adapt, or all-linear"})
    attn_implementation: Optional[str] = field(default=None, metadata={
        "help": "attention kernel, e.g. flash_attention_2 on GPUs (default: transformers' choice, sdpa)"})


@dataclass
class TrajectoryDataArguments:
    """Data flags shared by the SFT and DPO trainers."""

    data_path: str = field(metadata={"help": "training data (JSON)"})
    eval_data_path: Optional[str] = field(default=None, metadata={"help": "held-out data in the same format, for --eval_strategy"})
    max_samples: Optional[int] = field(default=None, metadata={"help": "train on the first N records only"})
    lazy_preprocess: bool = field(default=False, metadata={
        "help": "accepted for the original command line; data is tokenized once before training either way"})


@dataclass
class DataArguments(TrajectoryDataArguments):
    data_path: str = field(metadata={"help": "SFT trajectories: [{id, conversations: [{from, value}]}]"})
    overlong: str = field(default="truncate", metadata={
        "help": "conversations longer than --model_max_length: truncate (keep the start) or drop",
        "choices": ["truncate", "drop"]})


@dataclass
class ProjectTrainingDefaults:
    """Defaults shared by the SFT and DPO trainers, mixed in before TRL's config class: bf16 only
    if asked (and only where CUDA is), no gradient checkpointing unless asked (slower on small
    models), a checkpoint per epoch (so a killed run resumes), and a finished model kept."""

    output_dir: Optional[str] = field(default=None, metadata={"help": "where the trained model is saved"})
    max_length: Optional[int] = field(default=2048, metadata={"help": "tokens per sequence (--model_max_length)"})
    bf16: Optional[bool] = field(default=False, metadata={"help": "bfloat16 mixed precision (CUDA only)"})
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing; the old flag is
    # translated (RENAMED), and None here lets transformers resolve an unset pair to False.
    gradient_checkpointing: Optional[bool] = field(default=None, metadata={"help": "old name of --activation_checkpointing"})
    save_strategy: str = field(default="epoch", metadata={"help": "when to write checkpoints (no, steps, epoch)"})
    logging_steps: float = field(default=1, metadata={"help": "log every N optimizer steps"})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "train even if --output_dir already holds a finished model (it is replaced)"})

    def get_warmup_steps(self, num_training_steps: int) -> int:
        # transformers rounds a warmup ratio up, and the first warmup step runs at lr 0: a run of a
        # single step (two DPO pairs in a demo round) would train nothing. Keep one step past warmup.
        return min(super().get_warmup_steps(num_training_steps), max(0, num_training_steps - 1))


@dataclass
class TrainingArguments(ProjectTrainingDefaults, SFTConfig):
    """``SFTConfig`` with this project's defaults; batching is chosen by ``choose_batching``."""

    packing: Optional[bool] = field(default=None, metadata={
        "help": "pack conversations into padding-free rows; default: on with flash attention, else off "
                "(padded batches of similar length)"})


# ---------------------------------------------------------------- the original command line
RENAMED = {"--evaluation_strategy": "--eval_strategy", "--model_max_length": "--max_length",
           "--warmup_ratio": "--warmup_steps", "--gradient_checkpointing": "--activation_checkpointing"}  # warmup_steps below 1 is a ratio in transformers 5
CUDA_ONLY = ("--bf16", "--tf32", "--fp16", "--fsdp", "--fsdp_config", "--deepspeed")


def _split_flags(argv: Sequence[str]) -> List[Tuple[str, Optional[str]]]:
    """argv -> [(flag, value or None)], accepting both ``--f v`` and ``--f=v``."""
    pairs, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and "=" in arg:
            flag, value = arg.split("=", 1)
            pairs.append((flag, value))
        elif arg.startswith("--") and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            pairs.append((arg, argv[i + 1]))
            i += 1
        else:
            pairs.append((arg, None))
        i += 1
    return pairs


def translate_legacy_args(argv: Sequence[str], has_cuda: bool) -> Tuple[List[str], List[str]]:
    """Rewrite the original FastChat/ETO flags for current transformers; returns (argv, notes)."""
    out, notes, layer_cls = [], [], None
    for flag, value in _split_flags(argv):
        if flag == "--fsdp_transformer_layer_cls_to_wrap":
            layer_cls = value
            continue
        if flag in RENAMED:
            notes.append(f"{flag} is now {RENAMED[flag]}")
            flag = RENAMED[flag]
        if not has_cuda and flag in CUDA_ONLY and (value or "true").lower() not in ("false", "0", "no", ""):
            notes.append(f"no CUDA device: ignoring {flag} {value or ''}".rstrip() + " (training in fp32 on CPU)")
            continue
        out += [flag] if value is None else [flag, value]
    if layer_cls and has_cuda:
        config = {"transformer_layer_cls_to_wrap": [c for c in layer_cls.split(",") if c]}
        if "--fsdp_config" in out:  # merge into the given config file
            i = out.index("--fsdp_config")
            with open(out[i + 1], encoding="utf-8") as f:
                config = {**json.load(f), **config}
            del out[i: i + 2]
        out += ["--fsdp_config", json.dumps(config)]
        notes.append("--fsdp_transformer_layer_cls_to_wrap is now part of --fsdp_config")
    return out, notes


# ------------------------------------------------------------------------------ data
def tokenize_records(records: Sequence[Dict], tokenizer, max_length: int, overlong: str) -> Tuple[Dict[str, list], Dict[str, int]]:
    """Token ids and assistant-only labels for each record, cut to ``max_length``."""
    from fastchat.chat_format import encode_for_training

    columns: Dict[str, list] = {"input_ids": [], "labels": []}
    stats = {"records": len(records), "overlong": 0, "truncated": 0, "dropped": 0, "tokens": 0, "label_tokens": 0}
    for record in records:
        encoded = encode_for_training(tokenizer, to_messages(record["conversations"]))
        ids, labels = encoded["input_ids"], encoded["labels"]
        if len(ids) > max_length:
            stats["overlong"] += 1
            ids, labels = ids[:max_length], labels[:max_length]
            if overlong == "drop" or all(label == -100 for label in labels):
                stats["dropped"] += 1
                continue
            stats["truncated"] += 1
        columns["input_ids"].append(ids)
        columns["labels"].append(labels)
        stats["tokens"] += len(ids)
        stats["label_tokens"] += sum(label != -100 for label in labels)
    return columns, stats


def build_dataset(records: Sequence[Dict], tokenizer, data_args: DataArguments, max_length: int, name: str):
    from datasets import Dataset

    columns, stats = tokenize_records(records, tokenizer, max_length, data_args.overlong)
    print(f"{name}: {stats['records']} conversations, {stats['overlong']} longer than {max_length} tokens "
          f"({stats['truncated']} truncated, {stats['dropped']} dropped); {stats['tokens']} tokens, "
          f"{stats['label_tokens']} of them trained on", flush=True)
    if not columns["input_ids"]:
        raise SFTDataError(f"no {name} conversation left to train on")
    return Dataset.from_dict(columns), stats


# ------------------------------------------------------------------------------ model
def check_output_dir(args: TrainingArguments) -> Optional[str]:
    """Refuse to replace a finished model; return the checkpoint to resume from, if any."""
    from transformers.trainer_utils import get_last_checkpoint

    if not args.output_dir:
        raise ValueError("--output_dir is required")
    if os.path.isfile(os.path.join(args.output_dir, COMPLETE_MARKER)) and not args.overwrite_output_dir:
        raise ValueError(f"{args.output_dir} already holds a trained model; choose another --output_dir "
                         "or pass --overwrite_output_dir True")
    if args.overwrite_output_dir or not os.path.isdir(args.output_dir):
        return None
    return get_last_checkpoint(args.output_dir)


def load_model_and_tokenizer(model_args: ModelArguments, args: TrainingArguments):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = model_args.model_name_or_path
    if os.path.exists(path) and not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(f"--model_name_or_path {path!r} is not a model folder (no config.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=args.trust_remote_code)
        dtype = torch.bfloat16 if args.bf16 else torch.float32
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=args.trust_remote_code,
                                                     attn_implementation=model_args.attn_implementation)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot load --model_name_or_path {path!r}: {str(error).splitlines()[0]}") from None
    if not tokenizer.chat_template:
        raise ValueError(f"{path} has no chat template; SFT needs a chat model (set tokenizer.chat_template)")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def choose_batching(args: TrainingArguments, model) -> str:
    """Resolve ``--packing`` when not given. Padding-free packing puts a batch into one row with
    position ids restarting per conversation; flash attention runs that as separate sequences,
    but other kernels (sdpa, eager: CPU, or GPUs without flash-attn) then attend over the whole
    row under a block mask: on CPU, packing measured 0.92x the speed of padded batches with 17%
    padding, and 0.55x with equal lengths (benchmarks/sft_throughput.py, README). So: packing
    with flash attention, batches of similar length otherwise."""
    flash = "flash" in str(getattr(model.config, "_attn_implementation", ""))
    if args.packing is None:
        args.packing = flash
        if not flash and args.train_sampling_strategy == "random":
            args.train_sampling_strategy = "group_by_length"
    if args.packing:
        return f"packed, padding-free ({'flash attention' if flash else 'WARNING: no flash attention, slow'})"
    return f"padded batches, {args.train_sampling_strategy} order"


def lora_config(model_args: ModelArguments):
    if model_args.lora_r <= 0:
        return None
    from peft import LoraConfig

    targets = model_args.lora_target_modules
    return LoraConfig(r=model_args.lora_r, lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout,
                      target_modules=targets if targets == "all-linear" else targets.split(","), task_type="CAUSAL_LM")


def save_final_model(trainer, tokenizer, model_args: ModelArguments, output_dir: str, stats: dict) -> None:
    """Full weights + tokenizer + chat template in ``output_dir``; a LoRA adapter is merged first."""
    if model_args.lora_r > 0:
        adapter_dir = os.path.join(output_dir, "adapter")
        trainer.save_model(adapter_dir)  # gathers sharded adapters under FSDP/DeepSpeed
        if trainer.is_world_process_zero():
            from peft import AutoPeftModelForCausalLM

            merged = AutoPeftModelForCausalLM.from_pretrained(adapter_dir, dtype=trainer.model.dtype).merge_and_unload()
            merged.save_pretrained(output_dir)
    else:
        trainer.save_model(output_dir)
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(output_dir)
        with open(os.path.join(output_dir, COMPLETE_MARKER), "w", encoding="utf-8") as f:
            json.dump({"base_model": model_args.model_name_or_path, "lora_r": model_args.lora_r, "data": stats}, f, indent=1)


def parse_args(dataclass_types: Sequence[type], argv: Optional[Sequence[str]] = None, description: str = ""):
    """Parse the (translated) command line into ``dataclass_types``; returns (*dataclasses, notes)."""
    import torch
    from transformers import HfArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    argv, notes = translate_legacy_args(argv, has_cuda=torch.cuda.is_available())
    parser = HfArgumentParser(tuple(dataclass_types), description=description,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    if any(a in ("-h", "--help") for a in argv):
        parser.print_help()
        sys.exit(0)
    return (*parser.parse_args_into_dataclasses(argv), notes)


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        model_args, data_args, args, notes = parse_args((ModelArguments, DataArguments, TrainingArguments), argv, __doc__)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        if args.eval_strategy != "no" and not data_args.eval_data_path:
            raise ValueError(f"--eval_strategy {args.eval_strategy} needs --eval_data_path")
        resume_from = check_output_dir(args)
        # Validate the data before spending time on the model.
        train_records = load_sft_data(data_args.data_path)[: data_args.max_samples]
        eval_records = load_sft_data(data_args.eval_data_path) if data_args.eval_data_path else None
        model, tokenizer = load_model_and_tokenizer(model_args, args)
        train_dataset, stats = build_dataset(train_records, tokenizer, data_args, args.max_length, "train")
        eval_dataset = None
        if eval_records is not None:
            eval_dataset, _ = build_dataset(eval_records, tokenizer, data_args, args.max_length, "eval")
    except (SFTDataError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from trl import SFTTrainer

    print(f"batching: {choose_batching(args, model)}", flush=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                         processing_class=tokenizer, peft_config=lora_config(model_args))
    if resume_from:
        print(f"resuming from {resume_from}", flush=True)
    result = trainer.train(resume_from_checkpoint=resume_from)
    stats["train_loss"] = round(result.training_loss, 4)
    save_final_model(trainer, tokenizer, model_args, args.output_dir, stats)
    if trainer.is_world_process_zero():
        print(f"saved {args.output_dir} (train loss {result.training_loss:.4f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
