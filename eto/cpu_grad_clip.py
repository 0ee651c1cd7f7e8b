"""Gradient clipping folded into the fused AdamW step, on a CPU.

The Trainer clips with ``torch.nn.utils.clip_grad_norm_``: a norm per gradient, then a multiply of
every gradient by the clip coefficient, then the optimizer reads them all again. On a CPU both
passes are slow next to what they do. For the 135M model's fp32 gradients on 2 cores (AVX-512):
the norms (``linalg.vector_norm``) take 67 ms where BLAS dot products take 34, and the multiply
38 ms, together about 5% of a demo SFT step. torch's fused AdamW already divides each gradient by
the optimizer's ``grad_scale`` as it reads it (the hook ``GradScaler`` uses), so the multiply can
ride along in that pass, and the norm can come from dot products. The update is the same to float
rounding (tests/test_sft.py).

Only a single process's or DDP's dense fp32 gradients on a CPU, with torch's fused AdamW, take this
path; anything else (FSDP, DeepSpeed, a GPU, another optimizer, a loss scaler) is clipped by the
Trainer as before.
"""

from __future__ import annotations

import torch

_SCALE = "grad_scale"  # the attribute torch's fused Adam/AdamW step reads


def _fused_adamw(optimizer):
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the torch optimizer
    fused = isinstance(inner, torch.optim.AdamW) and inner.defaults.get("fused")
    return inner if fused else None


def total_norm(grads) -> torch.Tensor:
    """The 2-norm of all the gradients together, from one dot product per gradient, summed in fp64."""
    squares = torch.stack([torch.dot(g.view(-1), g.view(-1)) for g in grads])
    return squares.double().sum().sqrt().float()


def install(trainer) -> None:
    """Replace ``trainer._clip_grad_norm`` (transformers' hook that clips and returns the norm
    before clipping) by a norm from dot products and a ``grad_scale`` for the next optimizer step,
    where the model's gradients and optimizer allow it."""
    from accelerate.utils import DistributedType

    clip_in_two_passes = trainer._clip_grad_norm
    cleared = set()

    def clip_in_optimizer_step(model):
        optimizer = _fused_adamw(trainer.optimizer)
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if (optimizer is None or trainer.accelerator.scaler is not None
                or trainer.accelerator.distributed_type not in (DistributedType.NO, DistributedType.MULTI_CPU)
                or not grads or any(g.device.type != "cpu" or g.dtype != torch.float32 or g.is_sparse
                                    or not g.is_contiguous() for g in grads)):
            return clip_in_two_passes(model)
        if id(optimizer) not in cleared:  # the scale is for one step only
            optimizer.register_step_post_hook(lambda opt, args, kwargs: setattr(opt, _SCALE, None))
            cleared.add(id(optimizer))
        norm = total_norm(grads)
        coefficient = torch.clamp(trainer.args.max_grad_norm / (norm + 1e-6), max=1.0)  # as torch's clip
        setattr(optimizer, _SCALE, 1.0 / coefficient)  # the step divides each gradient by it
        return norm

    trainer._clip_grad_norm = clip_in_optimizer_step
