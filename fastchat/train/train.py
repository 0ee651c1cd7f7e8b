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
(``eto.chat_format.encode_for_training``, the same template the FastChat worker serves).
Conversations longer than ``--model_max_length`` are truncated (or dropped, ``--overlong drop``)
and counted. No compute goes to padding: with flash attention, conversations are packed into
padding-free rows (TRL's best-fit-decreasing packing, position ids restarting per conversation,
so attention never crosses conversations); with other attention kernels (CPU), batches hold
conversations of similar length (``--packing True/False`` forces either). ``--lora_r 16`` trains a LoRA adapter (PEFT) and merges it on save. The output folder
holds the model, tokenizer and chat template, ready for ``fastchat.serve.model_worker``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

from trl import SFTConfig

from eto.records import RecordError, load_sft_data, to_messages
from eto.trainer_core import (ModelArguments, ProjectTrainingDefaults, TrainingJob, TrajectoryDataArguments,
                              check_eval_data, load_model_and_tokenizer, lora_config, run_reporting_full_disk,
                              run_training)


@dataclass
class DataArguments(TrajectoryDataArguments):
    data_path: str = field(metadata={"help": "SFT trajectories: [{id, conversations: [{from, value}]}]"})
    overlong: str = field(default="truncate", metadata={
        "help": "conversations longer than --model_max_length: truncate (keep the start) or drop",
        "choices": ["truncate", "drop"]})


@dataclass
class TrainingArguments(ProjectTrainingDefaults, SFTConfig):
    """``SFTConfig`` with this project's defaults; batching is chosen by ``choose_batching``."""

    packing: Optional[bool] = field(default=None, metadata={
        "help": "pack conversations into padding-free rows; default: on with flash attention, else off "
                "(padded batches of similar length)"})


# ------------------------------------------------------------------------------ data
def tokenize_records(records: Sequence[Dict], tokenizer, max_length: int, overlong: str) -> Tuple[Dict[str, list], Dict[str, int]]:
    """Token ids and assistant-only labels for each record, cut to ``max_length``."""
    from eto.chat_format import encode_for_training

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
        raise RecordError(f"no {name} conversation left to train on")
    return Dataset.from_dict(columns), stats


def choose_batching(args: TrainingArguments, model) -> str:
    """Resolve ``--packing`` when not given. Padding-free packing puts a batch into one row with
    position ids restarting per conversation; flash attention runs that as separate sequences,
    but other kernels (sdpa, eager: CPU, or GPUs without flash-attn) then attend over the whole
    row under a block mask: on CPU, packing measured 0.92x the speed of padded batches with 17%
    padding, and 0.55x with equal lengths (benchmarks/sft_throughput.py, docs/training.md). So: packing
    with flash attention, batches of similar length otherwise."""
    flash = "flash" in str(getattr(model.config, "_attn_implementation", ""))
    if args.packing is None:
        args.packing = flash
        if not flash and args.train_sampling_strategy == "random":
            args.train_sampling_strategy = "group_by_length"
    if args.packing:
        return f"packed, padding-free ({'flash attention' if flash else 'WARNING: no flash attention, slow'})"
    return f"padded batches, {args.train_sampling_strategy} order"


def prepare(model_args: ModelArguments, data_args: DataArguments, args: TrainingArguments) -> TrainingJob:
    check_eval_data(args, data_args)
    # Validate the data before spending time on the model.
    train_records = load_sft_data(data_args.data_path)[: data_args.max_samples]
    eval_records = load_sft_data(data_args.eval_data_path) if data_args.eval_data_path else None
    model, tokenizer = load_model_and_tokenizer(model_args, args)
    train_dataset, stats = build_dataset(train_records, tokenizer, data_args, args.max_length, "train")
    eval_dataset = None
    if eval_records is not None:
        eval_dataset, _ = build_dataset(eval_records, tokenizer, data_args, args.max_length, "eval")

    def make_trainer():
        from trl import SFTTrainer

        print(f"batching: {choose_batching(args, model)}", flush=True)
        return SFTTrainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                          processing_class=tokenizer, peft_config=lora_config(model_args))

    return TrainingJob(tokenizer, make_trainer, lambda result: {**stats, "train_loss": round(result.training_loss, 4)})


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_training((ModelArguments, DataArguments, TrainingArguments), argv, __doc__, prepare)


if __name__ == "__main__":
    sys.exit(run_reporting_full_disk(main))
