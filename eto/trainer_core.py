"""What the trainers share: model/data/trainer arguments, the original command line, model
loading, checkpoints and resume, LoRA, and the served output folder.

``fastchat/train/train.py`` (SFT) and ``fastchat/train/train_dpo.py`` (DPO) are thin layers over
this module; a new trainer (RFT reuses SFT; PPO; step-level DPO) builds on the same pieces:
``parse_args`` for the command line, ``check_output_dir`` for resume and finished-folder
protection, ``load_model_and_tokenizer``, ``lora_config`` and ``save_final_model``.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

from eto.io import read_json, write_json_atomic

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
class ProjectTrainingDefaults:
    """Defaults shared by the SFT and DPO trainers, mixed in before TRL's config class: bf16 only
    if asked (and only where CUDA or a CPU with bf16 instructions is), no gradient checkpointing
    unless asked (slower on small models), a checkpoint per epoch (so a killed run resumes), and a
    finished model kept."""

    output_dir: Optional[str] = field(default=None, metadata={"help": "where the trained model is saved"})
    max_length: Optional[int] = field(default=2048, metadata={"help": "tokens per sequence (--model_max_length)"})
    bf16: Optional[bool] = field(default=False, metadata={
        "help": "bfloat16 mixed precision: fp32 weights, bf16 matmuls (CUDA, or a CPU with avx512_bf16/AMX)"})
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing; the old flag is
    # translated (RENAMED), and None here lets transformers resolve an unset pair to False.
    gradient_checkpointing: Optional[bool] = field(default=None, metadata={"help": "old name of --activation_checkpointing"})
    save_strategy: str = field(default="epoch", metadata={"help": "when to write checkpoints (no, steps, epoch)"})
    logging_steps: float = field(default=1, metadata={"help": "log every N optimizer steps"})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "train even if --output_dir already holds a finished model (it is replaced)"})
    lm_head_all_positions: bool = field(default=False, metadata={
        "help": "on a CPU, project every position through the LM head, as TRL does there, instead of only the "
                "positions with a label (same loss, slower; for measuring)"})
    trl_lm_head_on_cpu: bool = field(default=False, metadata={
        "help": "on a CPU, score tokens with TRL's chunked log-prob kernel (gradient products in fp32) instead of "
                "eto.cpu_lm_head (products in the autocast dtype, as every other layer's; 2.5x faster; for measuring)"})
    file_mapped_weights_on_cpu: bool = field(default=False, metadata={
        "help": "on a CPU, train the weights where the model file is mapped (the first optimizer step then copies "
                "them page by page: 1.5 s more for 135M parameters) instead of in memory of their own; for measuring"})
    padded_batches_on_cpu: bool = field(default=False, metadata={
        "help": "on a CPU, run a padded batch as one, with its attention mask, instead of each row alone "
                "without its padding (same loss, slower; for measuring)"})
    compile_decoder_layers: bool = field(default=False, metadata={
        "help": "torch.compile each decoder layer (inductor, dynamic shapes): one compilation serves every layer; "
                "pays only on long runs (docs/training.md, Training on CPU)"})
    snapshot_steps: str = field(default="", metadata={
        "help": "comma-separated optimizer steps after which the model is also saved, finished and servable, in "
                "<output_dir>/<its name>-step-<N> (a dose-response from one run: eto/pipeline/methods.py's dose)"})
    separate_clip_pass_on_cpu: bool = field(default=False, metadata={
        "help": "on a CPU, clip gradients in passes of their own, as transformers does, instead of folding the clip "
                "into the fused AdamW step (eto.cpu_grad_clip; same update, slower; for measuring)"})
    ddp_find_unused_parameters: Optional[bool] = field(default=False, metadata={
        "help": "DDP looks for parameters without a gradient after each backward (an extra pass over the "
                "graph); every parameter of these trainers gets one"})
    share_prompts_on_cpu: bool = field(default=True, metadata={
        "help": "on a CPU, compute the prompt a DPO pair's two sides share once (False: once per side; same "
                "loss, slower; for measuring)"})

    def get_warmup_steps(self, num_training_steps: int) -> int:
        # transformers rounds a warmup ratio up, so a short run (two DPO pairs in a demo round) could
        # be all warmup; keep one step at the full rate past it (first_step_trains: no step at lr 0).
        return min(super().get_warmup_steps(num_training_steps), max(0, num_training_steps - 1))


# ---------------------------------------------------------------- the original command line
RENAMED = {"--evaluation_strategy": "--eval_strategy", "--model_max_length": "--max_length",
           "--warmup_ratio": "--warmup_steps", "--gradient_checkpointing": "--activation_checkpointing"}  # warmup_steps below 1 is a ratio in transformers 5
# The original's --fsdp words, as --fsdp_config settings (transformers 5 deprecates the words; FSDP2
# takes full_shard as resharding after forward). Other words (hybrid_shard, ...) pass as given.
FSDP_WORDS = {"full_shard": {"reshard_after_forward": True}, "shard_grad_op": {"reshard_after_forward": False},
              "offload": {"cpu_offload": True}, "auto_wrap": {}}
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


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (avx512_bf16 or AMX): there, bf16 autocast trained
    the bundled 135M model 1.36x faster than fp32 on 2 cores (benchmarks/cpu_training_dtype.py)."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def cpu_numerics() -> str:
    """What decides a CPU training's floating-point results, for its log: the same data and seeds
    give other weights on a CPU whose kernels differ (run_eto.sh's CPU_TRAIN_PORTABLE pins them)."""
    import torch

    return (f"CPU numerics: ATen kernels {torch.backends.cpu.get_cpu_capability()}, "
            f"MKL_CBWR={os.environ.get('MKL_CBWR', 'unset')}, ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')}, "
            f"{torch.get_num_threads()} threads")


def translate_legacy_args(argv: Sequence[str], has_cuda: bool, cpu_bf16: bool = False) -> Tuple[List[str], List[str]]:
    """Rewrite the original FastChat/ETO flags for current transformers; returns (argv, notes).
    Without CUDA the GPU-only flags are dropped, except --bf16 on a CPU with bf16 instructions."""
    out, notes, layer_cls, fsdp_settings = [], [], None, {}
    for flag, value in _split_flags(argv):
        if flag == "--fsdp_transformer_layer_cls_to_wrap":
            layer_cls = value
            continue
        if flag in RENAMED:
            notes.append(f"{flag} is now {RENAMED[flag]}")
            flag = RENAMED[flag]
        enabled = (value or "true").lower() not in ("false", "0", "no", "")
        if not has_cuda and flag == "--bf16" and cpu_bf16 and enabled:
            notes.append("no CUDA device: --bf16 runs as bf16 autocast on this CPU (it has bf16 instructions)")
            out += [flag, "True", "--use_cpu", "True"]  # transformers refuses bf16 without a GPU unless told
            continue
        elif not has_cuda and flag in CUDA_ONLY and enabled:
            notes.append(f"no CUDA device: ignoring {flag} {value or ''}".rstrip() + " (training in fp32 on CPU)")
            continue
        if flag == "--fsdp" and value and set(value.split()) <= set(FSDP_WORDS):
            fsdp_settings = {k: v for word in value.split() for k, v in FSDP_WORDS[word].items()}
            notes.append(f"--fsdp {value!r} is now a bare --fsdp with {json.dumps(fsdp_settings)} in --fsdp_config")
            value = None
        out += [flag] if value is None else [flag, value]
    if layer_cls and has_cuda:
        fsdp_settings["transformer_layer_cls_to_wrap"] = [c for c in layer_cls.split(",") if c]
        notes.append("--fsdp_transformer_layer_cls_to_wrap is now part of --fsdp_config")
    if fsdp_settings:
        if "--fsdp_config" in out:  # merge into the given config file
            i = out.index("--fsdp_config")
            fsdp_settings = {**read_json(out[i + 1], "--fsdp_config file"), **fsdp_settings}
            del out[i: i + 2]
        out += ["--fsdp_config", json.dumps(fsdp_settings)]
    return out, notes


# ------------------------------------------------------------------------------ full disk
FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
FULL_DISK_MESSAGES = ("No space left on device", "File too large", "file write failed", "Disk quota exceeded")


def is_full_disk(error: BaseException) -> bool:
    """A write that failed for lack of space, however the library that wrote reported it (torch
    and safetensors wrap the OSError in their own errors)."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in FULL_DISK_ERRNOS:
            return True
        if any(m in str(error) for m in FULL_DISK_MESSAGES):
            return True
        error = error.__cause__ or error.__context__
    return False


def run_reporting_full_disk(main) -> int:
    """``main()``; a full disk ends it with one line and exit 1 instead of a traceback. What was
    written to the end stays: a checkpoint cut short is passed over on resume (see
    ``last_complete_checkpoint``), and the finished-model marker is written last."""
    try:
        return main()
    except Exception as error:  # the tokenizers library raises a bare Exception for a failed write
        if not is_full_disk(error):
            raise
        first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        print(file=sys.stderr)  # after whatever progress bar was drawing
        print(f"error: a write failed for lack of space ({first_line}); free space and rerun: training resumes "
              "from the last complete checkpoint", file=sys.stderr)
        return 1


# ------------------------------------------------------------------------------ model
def check_output_dir(args) -> Optional[str]:
    """Refuse to replace a finished model; return the checkpoint to resume from, if any."""
    if not args.output_dir:
        raise ValueError("--output_dir is required")
    if os.path.isfile(os.path.join(args.output_dir, COMPLETE_MARKER)) and not args.overwrite_output_dir:
        raise ValueError(f"{args.output_dir} already holds a trained model; choose another --output_dir "
                         "or pass --overwrite_output_dir True")
    lock_output_dir(args.output_dir)
    if args.overwrite_output_dir:
        return None
    return last_complete_checkpoint(args.output_dir)


_LOCKS = []  # open lock files, held until the process ends


def lock_output_dir(output_dir: str) -> None:
    """Never two trainings writing one folder: the first process (rank 0 under torchrun) holds an
    exclusive lock on ``<output_dir>/.lock`` until it ends, however it ends; a second is refused."""
    import fcntl

    os.makedirs(output_dir, exist_ok=True)  # every rank: the others list it before rank 0 writes there
    if int(os.environ.get("RANK", "0")) != 0:
        return
    handle = open(os.path.join(output_dir, ".lock"), "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ValueError(f"{output_dir} is being written by another training run; wait for it or stop it") from None
    _LOCKS.append(handle)


def last_complete_checkpoint(output_dir: str) -> Optional[str]:
    """The newest ``checkpoint-N`` that was written to the end. The Trainer writes a checkpoint's
    ``trainer_state.json`` last, so a folder without a readable one was cut short (a kill, a full
    disk) and resuming from it would fail or load half a model: it is passed over, with a note."""
    steps = sorted(((int(m.group(1)), name) for name in os.listdir(output_dir)
                    if (m := re.fullmatch(r"checkpoint-(\d+)", name)) and os.path.isdir(os.path.join(output_dir, name))),
                   reverse=True)
    for _, name in steps:
        path = os.path.join(output_dir, name)
        try:
            with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as f:
                json.load(f)
            return path
        except (OSError, ValueError):
            print(f"note: {path} is incomplete (no readable trainer_state.json); not resuming from it", flush=True)
    return None


def load_model_and_tokenizer(model_args: ModelArguments, args, trained: bool = True):
    """The model (fp32, or bf16 for a frozen LoRA base under --bf16) and its tokenizer, with this
    project's CPU training speed-ups applied; ``trained`` False for a frozen reference."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = model_args.model_name_or_path
    if os.path.exists(path) and not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(f"--model_name_or_path {path!r} is not a model folder (no config.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=args.trust_remote_code)
        # fp32 master weights, as the original (bf16 is autocast): a bf16 weight cannot take an
        # update of lr 1e-6 (its spacing near 0.02 is 1e-4). A frozen LoRA base may load in bf16.
        dtype = torch.bfloat16 if args.bf16 and model_args.lora_r > 0 else torch.float32
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=args.trust_remote_code,
                                                     attn_implementation=model_args.attn_implementation)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot load --model_name_or_path {path!r}: {str(error).splitlines()[0]}") from None
    # Every trainer config mixes in ProjectTrainingDefaults. GPUs are left as they were: padding-free
    # packing with flash attention is their way, and the split is decided per call on CPU tensors.
    if not args.padded_batches_on_cpu and not torch.cuda.is_available():
        run_rows_unpadded_on_cpu(model, share_prompts=args.share_prompts_on_cpu)
    if trained and model_args.lora_r <= 0 and not args.file_mapped_weights_on_cpu and not torch.cuda.is_available():
        own_weight_memory(model)
    if args.compile_decoder_layers:
        compile_decoder_layers(model)
    if not tokenizer.chat_template:
        raise ValueError(f"{path} has no chat template; SFT needs a chat model (set tokenizer.chat_template)")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def own_weight_memory(model) -> None:
    """Give every parameter memory of its own. transformers maps a safetensors file whose dtype is
    the one asked for, and the weights are views of that mapping: the first optimizer step then
    writes all of them copy-on-write, a page fault per 4 KiB (first AdamW step 1.8 s instead of
    0.09 s for 135M parameters on a 2-core VM; a copy up front costs 0.17 s). A GPU copies them
    anyway when the model moves there."""
    for param in model.parameters():  # tied weights are one parameter: they stay tied
        param.data = param.data.clone()


def lora_config(model_args: ModelArguments):
    if model_args.lora_r <= 0:
        return None
    from peft import LoraConfig

    targets = model_args.lora_target_modules
    return LoraConfig(r=model_args.lora_r, lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout,
                      target_modules=targets if targets == "all-linear" else targets.split(","), task_type="CAUSAL_LM")


def save_final_model(trainer, tokenizer, model_args: ModelArguments, output_dir: str, stats: dict,
                     timing: Optional[dict] = None) -> None:
    """Full weights + tokenizer + chat template in ``output_dir``; a LoRA adapter is merged first.
    The marker file records the data's facts, the seconds spent, and the trainer's log at every
    logging step (losses at full precision: the console rounds them to 4 digits)."""
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
        write_json_atomic(os.path.join(output_dir, COMPLETE_MARKER),
                          {"base_model": model_args.model_name_or_path, "lora_r": model_args.lora_r, "data": stats,
                           "seconds": timing or {}, "log_history": trainer.state.log_history})


def parse_args(dataclass_types: Sequence[type], argv: Optional[Sequence[str]] = None, description: str = ""):
    """Parse the (translated) command line into ``dataclass_types``; returns (*dataclasses, notes)."""
    import torch
    from transformers import HfArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    has_cuda = torch.cuda.is_available()
    argv, notes = translate_legacy_args(argv, has_cuda=has_cuda, cpu_bf16=not has_cuda and cpu_has_bf16())
    if not has_cuda:
        notes.append(cpu_numerics())
        ranks = int(os.environ.get("WORLD_SIZE", "1"))
        if ranks > 1:
            # Under torchrun without CUDA, accelerate engages DDP (gloo) only when told the
            # training is on the CPU; otherwise each rank trains alone on all the data.
            argv += [] if "--use_cpu" in argv else ["--use_cpu", "True"]
            notes.append(f"no CUDA device: the {ranks} processes train together on the CPU (DDP over gloo)")
    parser = HfArgumentParser(tuple(dataclass_types), description=description,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    if any(a in ("-h", "--help") for a in argv):
        parser.print_help()
        sys.exit(0)
    return (*parser.parse_args_into_dataclasses(argv), notes)


# ------------------------------------------------------------------------------ the LM head
def score_labelled_positions_only() -> None:
    """Make TRL's fused LM head project only the positions that carry a label on the CPU too.

    TRL's trainers (SFT, DPO, GRPO) score tokens with a chunked LM head that skips unlabelled
    positions only on Triton devices (CUDA, XPU); elsewhere it projects every position, to keep
    tile shapes fixed for compiled backends. Eager CPU training has no such need, and in agent
    trajectories most tokens are observations: the 49,152-word projection of the bundled model
    is a fifth of its forward FLOPs a token. Same log-probabilities, so the same loss
    (tests/test_sft.py); on the demo's SFT data, 1.29x the steps per second (docs/training.md). The
    Triton kernels themselves are chosen elsewhere in TRL and are untouched."""
    import trl.trainer.utils as trl_utils

    use_triton = getattr(trl_utils, "_use_triton", None)
    if use_triton is None or getattr(use_triton, "cpu_too", False):
        return

    def compact(device) -> bool:
        return device.type == "cpu" or use_triton(device)

    compact.cpu_too = True
    trl_utils._use_triton = compact


# ------------------------------------------------------------------------------ padding on a CPU
_CACHE_ARGS = ("past_key_values", "inputs_embeds", "position_ids", "cache_position", "output_hidden_states",
               "output_attentions")


def run_rows_unpadded_on_cpu(model, share_prompts: bool = True) -> None:
    """Make the model's backbone run a padded batch one row at a time, each without its padding,
    and a preference pair's shared prompt once, when the batch is on a CPU.

    - A padded batch needs an attention mask, and with one, PyTorch's CPU attention kernel can no
      longer skip the blocks above the diagonal: its forward and backward took 1.6x as long at
      1,100 tokens as the same attention with ``is_causal`` (bf16, 2 cores). DPO always pads: a
      pair is one batch of its chosen and rejected sides. Alone, a row is causal without a mask
      and computes no padding; rows of about a thousand tokens keep the matrix products large.
    - A DPO batch is [chosen rows, rejected rows], and each pair's two sides begin with the same
      prompt (half of a demo pair's tokens). With ``share_prompts``, the shared beginning runs once;
      each side continues from its keys and values, and gradients reach it from both.

    Positions and values are the rows' own, so the log-probabilities and gradients are the same
    (tests/test_dpo.py). Only a right-padded batch without a cache is changed (training's
    forwards); generation, left padding, packed rows (``position_ids``), router logits (MoE),
    activation checkpointing and any other device run as given."""
    import torch
    from transformers.modeling_outputs import BaseModelOutputWithPast

    backbone = model.base_model
    if getattr(backbone.forward, "rows_unpadded", False):
        return
    padded_forward = backbone.forward

    def pair(first, second, shared: int, kwargs):
        """The two rows' hidden states, their first ``shared`` tokens computed once."""
        from transformers import DynamicCache

        head = padded_forward(input_ids=first[None, :shared], use_cache=True, **kwargs)
        states = []
        for row in (first, second):
            cache = DynamicCache()
            for index, layer in enumerate(head.past_key_values.layers):  # update() concatenates: head's stay as they are
                cache.update(layer.keys, layer.values, index)
            tail = padded_forward(input_ids=row[None, shared:], past_key_values=cache, use_cache=True, **kwargs)
            states.append(torch.cat([head.last_hidden_state, tail.last_hidden_state], dim=1))
        return states

    def forward(input_ids=None, attention_mask=None, **kwargs):
        lengths = _right_padded_lengths(input_ids, attention_mask, kwargs)
        if lengths is None or getattr(backbone, "gradient_checkpointing", False):
            return padded_forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        kwargs.pop("use_cache", None)
        rows = [input_ids[i, :n] for i, n in enumerate(lengths)]
        half, width = len(rows) // 2, input_ids.shape[1]
        shared = ([_shared_length(rows[i], rows[i + half]) for i in range(half)]
                  if share_prompts and len(rows) % 2 == 0 else [])
        if shared and min(shared) >= MIN_SHARED_TOKENS:
            states = [None] * len(rows)
            for i, length in enumerate(shared):
                states[i], states[i + half] = pair(rows[i], rows[i + half], length, kwargs)
        elif all(n == width for n in lengths):
            return BaseModelOutputWithPast(last_hidden_state=padded_forward(input_ids=input_ids, use_cache=False,
                                                                            **kwargs).last_hidden_state)
        else:
            states = [padded_forward(input_ids=row[None], use_cache=False, **kwargs).last_hidden_state for row in rows]
        return BaseModelOutputWithPast(last_hidden_state=torch.cat(
            [torch.nn.functional.pad(state, (0, 0, 0, width - state.shape[1])) for state in states]))

    forward.rows_unpadded = True
    backbone.forward = forward


def compile_decoder_layers(model) -> None:
    """Compile the model's repeated blocks (the classes it names as not to be split, the unit FSDP
    wraps) rather than the whole model: the layers share their code, so inductor compiles once
    for all of them, and dynamic shapes spare a recompilation per sequence length."""
    blocks = set(getattr(model, "_no_split_modules", None) or ())
    for module in model.modules():
        if type(module).__name__ in blocks:
            module.compile(dynamic=True)


MIN_SHARED_TOKENS = 32  # below this, a shared beginning is not worth a third forward call


def _shared_length(first, second) -> int:
    """How many leading tokens two rows share, leaving each at least one of its own."""
    limit = min(len(first), len(second)) - 1
    differs = (first[:limit] != second[:limit]).nonzero()
    return int(differs[0]) if len(differs) else max(limit, 0)


def _right_padded_lengths(input_ids, attention_mask, kwargs) -> Optional[List[int]]:
    """Each row's length when the batch may be split (see ``run_rows_unpadded_on_cpu``), else None."""
    if (input_ids is None or attention_mask is None or input_ids.device.type != "cpu" or attention_mask.dim() != 2
            or kwargs.get("use_cache") or kwargs.get("output_router_logits")  # MoE aux loss reads more than states
            or any(kwargs.get(name) is not None for name in _CACHE_ARGS)):
        return None
    lengths = attention_mask.sum(dim=1)
    if not bool((attention_mask.cumprod(dim=1).sum(dim=1) == lengths).all()) or not bool((lengths > 0).all()):
        return None  # left padding or holes: positions would differ
    return lengths.tolist()


# ------------------------------------------------------------------------------ the main
def first_step_trains():
    """A trainer callback: the warmup's first step trains.

    transformers' warmup schedules scale the learning rate by ``step / warmup`` from step 0, so
    the first optimizer step of any run with a warmup runs at learning rate 0 and changes nothing:
    one of the 6 steps of a demo DPO round, one of the 6 of each ScienceWorld evidence round
    (its log: ``learning_rate: 0`` at step 1). Here the warmup counts from one: step ``s`` of the
    warmup runs at the schedule's value for ``s + 1``, so the peak comes one step sooner and the
    schedule after the warmup is unchanged. Applied when training begins, after a resumed
    checkpoint's scheduler state is loaded (a LambdaLR saves no functions), so a resumed run
    follows the same schedule."""
    from torch.optim.lr_scheduler import LambdaLR
    from transformers import TrainerCallback

    class _FirstStepTrains(TrainerCallback):
        def on_train_begin(self, args, state, control, lr_scheduler=None, optimizer=None, **kwargs):
            warmup = args.get_warmup_steps(state.max_steps)
            if not isinstance(lr_scheduler, LambdaLR) or warmup <= 0:
                return
            lr_scheduler.lr_lambdas = [
                (lambda step, f=f: f(step + 1) if step < warmup else f(step)) for f in lr_scheduler.lr_lambdas]
            lrs = [base * f(lr_scheduler.last_epoch) for base, f in zip(lr_scheduler.base_lrs, lr_scheduler.lr_lambdas)]
            for group, lr in zip(lr_scheduler.optimizer.param_groups, lrs):
                group["lr"] = lr
            lr_scheduler._last_lr = lrs

    return _FirstStepTrains()


def snapshot_folder(output_dir: str, step: int) -> str:
    """``<output_dir>/<its name>-step-<N>``: served models are known by their folder's name (the
    episodes' folder too), so two runs' snapshots of one step must not share it."""
    return os.path.join(output_dir, f"{os.path.basename(os.path.normpath(output_dir))}-step-{step}")


def snapshots(trainer, tokenizer, model_args, output_dir: str, steps: Sequence[int]):
    """A trainer callback: after each of ``steps`` optimizer steps, the model as a finished folder
    (``snapshot_folder``: weights, tokenizer, marker with the log so far), as the final one is
    saved. One already finished (a resumed run passing the step again) is kept."""
    from transformers import TrainerCallback

    class _Snapshots(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            folder = snapshot_folder(output_dir, state.global_step)
            if state.global_step in steps and not os.path.isfile(os.path.join(folder, COMPLETE_MARKER)):
                save_final_model(trainer, tokenizer, model_args, folder, {"snapshot_step": state.global_step})

    return _Snapshots()


def parse_steps(text: str) -> List[int]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ValueError(f"--snapshot_steps takes optimizer steps above 0, comma-separated, not {text!r}")
    return sorted({int(part) for part in parts})


def step_timer():
    """A trainer callback that keeps the seconds of each optimizer step (the first ones show what
    compiling cost; benchmarks/training_speed.py reads them)."""
    import time

    from transformers import TrainerCallback

    class _StepTimes(TrainerCallback):
        def __init__(self):
            self.seconds, self._started = [], None

        def on_step_begin(self, args, state, control, **kwargs):
            self._started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if self._started is not None:
                self.seconds.append(round(time.perf_counter() - self._started, 3))

    return _StepTimes()


@dataclass
class TrainingJob:
    """What a trainer's ``prepare`` hands the shared main: the processing class, a trainer to
    build, the facts it records in the finished folder, and cleanup."""

    tokenizer: object
    make_trainer: Callable[[], object]
    stats: Callable[[object], dict]                 # the train result -> facts for eto_training.json
    summary: Callable[[object], str] = lambda result: f"train loss {result.training_loss:.4f}"
    close: Optional[Callable[[], None]] = None      # run however training ends (rollout engines)


def run_training(dataclass_types: Sequence[type], argv: Optional[Sequence[str]], description: str,
                 prepare: Callable[..., TrainingJob],
                 input_errors: Tuple[type, ...] = (ValueError, FileNotFoundError)) -> int:
    """Every trainer's main: parse the (original) command line, refuse a finished output folder
    and find the checkpoint to resume from, ``prepare`` (check the data before loading the model;
    a bad input is one line and exit 2), train, save the final model (rank 0 says so)."""
    try:
        model_args, data_args, args, notes = parse_args(dataclass_types, argv, description)
        for note in notes if int(os.environ.get("RANK", "0")) == 0 else []:  # once, not once per rank
            print(f"note: {note}", file=sys.stderr)
        resume_from = check_output_dir(args)
        snapshot_steps = parse_steps(args.snapshot_steps)
        if not args.lm_head_all_positions:  # every trainer config mixes in ProjectTrainingDefaults
            score_labelled_positions_only()
        if not args.trl_lm_head_on_cpu:
            from eto import cpu_lm_head

            cpu_lm_head.install()
        job = prepare(model_args, data_args, args)
    except input_errors as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    import time

    try:
        started = time.perf_counter()
        trainer = job.make_trainer()  # DPO: the reference log-probs are computed here
        if not args.separate_clip_pass_on_cpu:
            from eto import cpu_grad_clip

            cpu_grad_clip.install(trainer)
        if snapshot_steps:
            trainer.add_callback(snapshots(trainer, job.tokenizer, model_args, args.output_dir, snapshot_steps))
        step_times = step_timer()
        trainer.add_callback(step_times)
        trainer.add_callback(first_step_trains())
        built = time.perf_counter()
        if resume_from:
            print(f"resuming from {resume_from}", flush=True)
        result = trainer.train(resume_from_checkpoint=resume_from)
        timing = {"trainer_setup": round(built - started, 3), "train": round(time.perf_counter() - built, 3),
                  "steps": step_times.seconds}
    finally:
        if job.close:
            job.close()
    save_final_model(trainer, job.tokenizer, model_args, args.output_dir, job.stats(result), timing)
    if trainer.is_world_process_zero():
        print(f"saved {args.output_dir} ({job.summary(result)})", flush=True)
    return 0


def check_eval_data(args, data_args) -> None:
    if args.eval_strategy != "no" and not data_args.eval_data_path:
        raise ValueError(f"--eval_strategy {args.eval_strategy} needs --eval_data_path")
