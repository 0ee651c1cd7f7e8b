"""Direct preference optimisation of an agent on trajectory pairs (ETO step 4), with TRL.

    python fastchat/train/train_dpo.py --model_name_or_path models/sciworld-sft \\
        --ref_model_name_or_path models/sciworld-sft --data_path data_pm/sciworld_pm_1.json \\
        --output_dir models/sciworld-dpo-1 --beta 0.1 --learning_rate 1e-6 --num_train_epochs 3

    torchrun --nproc_per_node 8 fastchat/train/train_dpo.py ... --bf16 True \\
        --fsdp "full_shard auto_wrap" --fsdp_transformer_layer_cls_to_wrap LlamaDecoderLayer

Sigmoid DPO (TRL's ``DPOTrainer``) over multi-turn continuations: the prompt (instruction, "OK",
task) is context, and in the chosen and rejected continuations only the agent's turns count, each
with its end-of-turn token; the observations between them are masked, exactly as in SFT
(``eto.chat_format.encode_for_training``). The reference is frozen: by default its
log-probabilities are computed once before training and cached beside the tokenized pairs in
``<output_dir>/pairs/`` (shared by all ranks, reused on resume), so no reference model is held
or run during training (``--precompute_ref_log_probs False`` keeps a live one).
The reference is the policy's starting point unless ``--ref_model_name_or_path`` names another.

The original ETO command line works as it is (``--max_prompt_length``, ``--max_target_length``,
``--model_max_length`` and the SFT flags, translated like ``train.py`` does: ``--evaluation_strategy``,
``--warmup_ratio``, ``--gradient_checkpointing``, ``--fsdp_transformer_layer_cls_to_wrap``). Truncation: a prompt
longer than ``--max_prompt_length`` keeps its end, each continuation keeps its first
``--max_target_length`` tokens, and prompt + continuation keep their first ``--max_length``;
pairs left without an agent token on a side are dropped, and the counts are printed.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from trl import DPOConfig, DPOTrainer
from trl.data_utils import common_prefix_length
from trl.trainer.dpo_trainer import DataCollatorForPreference

from eto.io import read_json_or_none, write_json_atomic
from eto.records import RecordError, load_preference_data, to_messages
from eto.trainer_core import (ModelArguments, ProjectTrainingDefaults, TrainingJob, TrajectoryDataArguments,
                              check_eval_data, load_model_and_tokenizer, lora_config, run_reporting_full_disk,
                              run_training)


@dataclass
class DPOModelArguments(ModelArguments):
    ref_model_name_or_path: Optional[str] = field(default=None, metadata={
        "help": "the frozen reference (default: --model_name_or_path, the policy before this round)"})


@dataclass
class DPODataArguments(TrajectoryDataArguments):
    data_path: str = field(metadata={"help": "preference pairs: [{id, prompt, chosen, rejected}] (construct_preference.py)"})
    max_prompt_length: Optional[int] = field(default=None, metadata={
        "help": "prompt tokens kept (its end); default: the whole prompt"})
    max_target_length: Optional[int] = field(default=None, metadata={
        "help": "tokens kept of each continuation (its start); default: up to --max_length"})


@dataclass
class DPOTrainingArguments(ProjectTrainingDefaults, DPOConfig):
    """``DPOConfig`` with the trainers' shared project defaults (``eto.trainer_core.ProjectTrainingDefaults``)."""

    precompute_ref_log_probs: bool = field(default=True, metadata={
        "help": "compute the reference log-probs once before training (no reference model during training); "
                "False runs a live reference model at every step"})


# ------------------------------------------------------------------------------ data
def tokenize_pair(record: Dict, tokenizer) -> Dict[str, List[int]]:
    """Prompt ids, and each continuation's ids with a mask that keeps only its agent turns."""
    from eto.chat_format import encode_for_training, render

    prompt = to_messages(record["prompt"])
    prompt_text = render(tokenizer, prompt, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    sides = {side: encode_for_training(tokenizer, prompt + to_messages(record[side])) for side in ("chosen", "rejected")}
    # Where the continuation starts: after the prompt's generation header, or where tokens merged across it.
    start = min(common_prefix_length(prompt_ids, sides[side]["input_ids"]) for side in sides)
    out = {"prompt_ids": sides["chosen"]["input_ids"][:start]}
    for side, encoded in sides.items():
        out[f"{side}_ids"] = encoded["input_ids"][start:]
        out[f"{side}_mask"] = [int(label != -100) for label in encoded["labels"][start:]]
    return out


def truncate_pair(pair: Dict[str, List[int]], max_length: Optional[int], max_prompt_length: Optional[int],
                  max_target_length: Optional[int]) -> Tuple[Dict[str, List[int]], bool]:
    """The pair cut to the limits (see the module docstring), and whether anything was cut."""
    cut = False
    if max_prompt_length is not None and len(pair["prompt_ids"]) > max_prompt_length:
        pair["prompt_ids"], cut = pair["prompt_ids"][-max_prompt_length:], True
    for side in ("chosen", "rejected"):
        limit = max_target_length
        if max_length is not None:
            room = max(0, max_length - len(pair["prompt_ids"]))
            limit = room if limit is None else min(limit, room)
        if limit is not None and len(pair[f"{side}_ids"]) > limit:
            pair[f"{side}_ids"], pair[f"{side}_mask"], cut = pair[f"{side}_ids"][:limit], pair[f"{side}_mask"][:limit], True
    return pair, cut


def pair_logprobs(model, tokenizer, pairs: Sequence[Dict], max_length: Optional[int] = None) -> List[Tuple[float, float]]:
    """(chosen, rejected) summed log-probabilities of each pair's agent tokens under ``model``,
    encoded as this trainer encodes them (cut to ``max_length`` tokens per side)."""
    import torch

    out = []
    for record in pairs:
        encoded, _ = truncate_pair(tokenize_pair(record, tokenizer), max_length, None, None)
        sums = []
        for side in ("chosen", "rejected"):
            ids = torch.tensor([encoded["prompt_ids"] + encoded[f"{side}_ids"]])
            mask = torch.tensor([[0] * len(encoded["prompt_ids"]) + encoded[f"{side}_mask"]])
            with torch.no_grad():
                logits = model(ids).logits[:, :-1]
            token_logps = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:, None])[..., 0]
            sums.append((token_logps * mask[:, 1:]).sum().item())
        out.append((sums[0], sums[1]))
    return out


def build_dataset(records: Sequence[Dict], tokenizer, data_args: DPODataArguments, max_length: Optional[int], name: str):
    from datasets import Dataset

    columns: Dict[str, list] = {k: [] for k in ("prompt_ids", "chosen_ids", "rejected_ids", "chosen_mask", "rejected_mask")}
    # tokens: what the policy reads of each pair in an epoch (the prompt once per side), no padding
    stats = {"pairs": len(records), "truncated": 0, "dropped": 0, "prompt_tokens": 0, "agent_tokens": 0, "tokens": 0}
    for record in records:
        pair, cut = truncate_pair(tokenize_pair(record, tokenizer), max_length, data_args.max_prompt_length,
                                  data_args.max_target_length)
        if not (any(pair["chosen_mask"]) and any(pair["rejected_mask"])):
            stats["dropped"] += 1
            continue
        stats["truncated"] += cut
        stats["prompt_tokens"] += len(pair["prompt_ids"])
        stats["agent_tokens"] += sum(pair["chosen_mask"]) + sum(pair["rejected_mask"])
        stats["tokens"] += 2 * len(pair["prompt_ids"]) + len(pair["chosen_ids"]) + len(pair["rejected_ids"])
        for key in columns:
            columns[key].append(pair[key])
    print(f"{name}: {stats['pairs']} pairs, {stats['truncated']} truncated, {stats['dropped']} dropped (no agent "
          f"turn left on a side); {stats['agent_tokens']} agent tokens trained on", flush=True)
    if not columns["prompt_ids"]:
        raise RecordError(f"no {name} pair left to train on")
    return Dataset.from_dict(columns), stats


class AgentTurnPreferenceCollator(DataCollatorForPreference):
    """TRL's preference collator, with the completion mask narrowed to the agent's turns."""

    def torch_call(self, examples):
        import torch

        output = super().torch_call(examples)
        width = output["input_ids"].shape[1]
        masks = [[0] * len(e["prompt_ids"]) + e[f"{side}_mask"] for side in ("chosen", "rejected") for e in examples]
        output["completion_mask"] = torch.tensor([(m + [0] * width)[:width] for m in masks], dtype=torch.long)
        return output


class TrajectoryDPOTrainer(DPOTrainer):
    """``DPOTrainer`` on data that ``build_dataset`` tokenized, agent-turn masks included."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return dataset

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        self._signature_columns = [*self._signature_columns, "chosen_mask", "rejected_mask"]


def share_on_disk(dataset, folder: str):
    """The dataset, saved once under ``folder`` and read back by every process.

    TRL caches the reference log-probs in a file beside the dataset's own files, at a path each
    process derives from them; an in-memory dataset has none (each process would look in its own
    temporary folder, and the cache would not outlive the run). Saved in the output folder, the
    log-probs are shared by all ranks and reused when a killed run resumes. The saved copy is
    keyed by the tokenized pairs themselves, so other pairs, another tokenizer or other length
    limits replace it (TRL keys the log-probs by the reference model's weights)."""
    import hashlib
    import json

    from accelerate import PartialState
    from datasets import load_from_disk

    stamp = hashlib.sha256(json.dumps(dataset.to_dict(), sort_keys=True).encode()).hexdigest()
    stamp_file = os.path.join(folder, "tokenized.sha256")
    state = PartialState()
    with state.main_process_first():
        if state.is_main_process:
            if read_json_or_none(stamp_file) != stamp:  # first run, or other tokens than the ones saved
                import shutil

                shutil.rmtree(folder, ignore_errors=True)
                dataset.save_to_disk(folder)
                write_json_atomic(stamp_file, stamp)
    return load_from_disk(folder)


# ------------------------------------------------------------------------------ main
def load_reference(model_args: DPOModelArguments, args: DPOTrainingArguments, policy):
    """None when the reference is the policy's own start (TRL then needs no second copy)."""
    ref = model_args.ref_model_name_or_path
    if not ref or os.path.normpath(ref) == os.path.normpath(model_args.model_name_or_path):
        return None
    ref_args = ModelArguments(model_name_or_path=ref, attn_implementation=model_args.attn_implementation)
    ref_model, _ = load_model_and_tokenizer(ref_args, args, trained=False)
    if ref_model.config.vocab_size != policy.config.vocab_size:
        raise ValueError(f"--ref_model_name_or_path {ref!r} has another vocabulary than the policy")
    return ref_model


def prepare(model_args: DPOModelArguments, data_args: DPODataArguments, args: DPOTrainingArguments) -> TrainingJob:
    check_eval_data(args, data_args)
    train_records = load_preference_data(data_args.data_path)[: data_args.max_samples]
    eval_records = load_preference_data(data_args.eval_data_path) if data_args.eval_data_path else None
    if not train_records:
        raise RecordError(f"{data_args.data_path}: no pairs (exploration gave no failure or success to learn from)")
    model, tokenizer = load_model_and_tokenizer(model_args, args)
    ref_model = load_reference(model_args, args, model)
    train_dataset, stats = build_dataset(train_records, tokenizer, data_args, args.max_length, "train")
    eval_dataset = None
    if eval_records is not None:
        eval_dataset, _ = build_dataset(eval_records, tokenizer, data_args, args.max_length, "eval")

    def make_trainer():
        train = share_on_disk(train_dataset, os.path.join(args.output_dir, "pairs", "train"))
        evaluation = (share_on_disk(eval_dataset, os.path.join(args.output_dir, "pairs", "eval"))
                      if eval_dataset is not None else None)
        collator = AgentTurnPreferenceCollator(pad_token_id=tokenizer.pad_token_id, max_length=args.max_length,
                                               pad_to_multiple_of=args.pad_to_multiple_of)
        return TrajectoryDPOTrainer(model=model, ref_model=ref_model, args=args, data_collator=collator,
                                    train_dataset=train, eval_dataset=evaluation,
                                    processing_class=tokenizer, peft_config=lora_config(model_args))

    def facts(result) -> dict:
        return {**stats, "train_loss": round(result.training_loss, 4), "beta": args.beta, "loss_type": list(args.loss_type),
                "reference": model_args.ref_model_name_or_path or model_args.model_name_or_path}

    return TrainingJob(tokenizer, make_trainer, facts)


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_training((DPOModelArguments, DPODataArguments, DPOTrainingArguments), argv, __doc__, prepare)


if __name__ == "__main__":
    sys.exit(run_reporting_full_disk(main))
