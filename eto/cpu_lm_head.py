"""Per-token log-probabilities through the LM head on a CPU, for TRL's fused-head forward.

TRL's trainers (SFT, DPO, GRPO, ...) score tokens with ``trl.kernels.ChunkedLogProbFunction``:
the logits are made in tiles of 32,768 words and never kept. Where Triton is missing, the tiles
are folded by a dozen elementwise torch passes, and the two gradient products are upcast to fp32
(an fp32 result from bf16 factors exists only on CUDA). On a 2-core Xeon with AMX an fp32 product
runs at a fifth of bf16's speed, so this head cost 3x what plain autograd does: 200 tokens,
forward + backward, 193 ms against 65 ms; 2,000 tokens 1,690 ms against 420 ms (docs/training.md,
"Training on CPU").

``TokenLogProbs`` is the same computation as one ``autograd.Function``: the whole vocabulary in one
product, tokens in chunks of ``CHUNK_TOKENS`` (about 400 MB of fp32 logits each for 49,152 words),
logits recomputed in the backward instead of kept. Its products round to the autocast dtype once
each, as every other layer's do under autocast; the partial weight gradients of the chunks are
summed in fp32. In fp32 (no autocast) it equals TRL's kernel to float rounding (tests/test_sft.py).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

CHUNK_TOKENS = 2048
KEEP_LOGITS = 2048 * 65536  # products kept for the backward up to this many logits (bf16: 256 MiB)
OUTPUTS = ("entropy", "log_sum_sq_probs", "mean_logits", "is_top1")  # TRL's optional outputs, in its order


def _compute_dtype(hidden: torch.Tensor) -> torch.dtype:
    return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else hidden.dtype


def _scaled(product: torch.Tensor, inv_temperature: float) -> torch.Tensor:
    """fp32 logits (a new tensor) from a chunk's product in the compute dtype."""
    z = product.float() if product.dtype != torch.float32 else product.clone()
    return z.mul_(inv_temperature) if inv_temperature != 1.0 else z


class TokenLogProbs(torch.autograd.Function):
    """log p(target) of ``hidden @ weight.T / temperature`` for each row, and the optional outputs
    TRL's kernel gives (entropy, log sum p^2, mean logit, whether the target is the argmax)."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, inv_temperature: float,
                outputs: Tuple[str, ...]):
        ctx.set_materialize_grads(False)  # an unused entropy brings no gradient to fold in
        dtype = _compute_dtype(hidden)
        w = weight.to(dtype)
        n = hidden.shape[0]
        # The products themselves are kept for the backward while they are small (the bf16 logits
        # of 2,048 tokens are 200 MB), and recomputed there otherwise.
        keep = n * w.shape[0] <= KEEP_LOGITS
        tiles = []
        log_z = hidden.new_empty(n, dtype=torch.float32)
        log_probs = torch.empty_like(log_z)
        extra = {name: torch.empty(n, dtype=torch.bool if name == "is_top1" else torch.float32)
                 for name in outputs}
        for start in range(0, n, CHUNK_TOKENS):
            end = min(start + CHUNK_TOKENS, n)
            tile = torch.mm(hidden[start:end].to(dtype), w.t())
            if keep:
                tiles.append(tile)
            z = _scaled(tile, inv_temperature)
            t = targets[start:end]
            log_z[start:end] = torch.logsumexp(z, -1)
            log_probs[start:end] = z.gather(1, t[:, None]).squeeze(1) - log_z[start:end]
            if "mean_logits" in extra:
                extra["mean_logits"][start:end] = z.mean(-1)
            if "is_top1" in extra:  # argmax gives the first maximum: a tie with an earlier word is not top-1
                extra["is_top1"][start:end] = z.argmax(-1) == t
            if "log_sum_sq_probs" in extra:
                extra["log_sum_sq_probs"][start:end] = torch.logsumexp(2 * z, -1) - 2 * log_z[start:end]
            if "entropy" in extra:
                p_z = torch.exp(z - log_z[start:end, None]).mul_(z)
                extra["entropy"][start:end] = log_z[start:end] - p_z.sum(-1)
        entropy = extra.get("entropy")
        ctx.save_for_backward(hidden, weight, w, targets, log_z, log_z if entropy is None else entropy, *tiles)
        ctx.inv_temperature = inv_temperature
        ctx.mark_non_differentiable(*(extra[name] for name in OUTPUTS[1:] if name in extra))
        return (log_probs, *(extra.get(name) for name in OUTPUTS))

    @staticmethod
    def backward(ctx, grad_log_probs: Optional[torch.Tensor], grad_entropy: Optional[torch.Tensor], *_):
        hidden, weight, w, targets, log_z, entropy, *tiles = ctx.saved_tensors
        need_hidden, need_weight = ctx.needs_input_grad[:2]
        if grad_log_probs is None and grad_entropy is None:
            return (torch.zeros_like(hidden) if need_hidden else None,
                    torch.zeros_like(weight) if need_weight else None, None, None, None)
        n = hidden.shape[0]
        grad_hidden = torch.empty(hidden.shape, dtype=torch.float32) if need_hidden else None
        grad_weight = None
        for i, start in enumerate(range(0, n, CHUNK_TOKENS)):
            end = min(start + CHUNK_TOKENS, n)
            h = hidden[start:end].to(w.dtype)
            log_p = _scaled(tiles[i] if tiles else torch.mm(h, w.t()), ctx.inv_temperature)
            log_p.sub_(log_z[start:end, None])
            if grad_entropy is None:  # d log p_t / dz_j = [j = t] - p_j
                grad = log_p.exp_().mul_(-grad_log_probs[start:end, None].float())
            else:  # d H / dz_j = -p_j (log p_j + H)
                p = log_p.exp()
                grad = p * log_p.add_(entropy[start:end, None]).mul_(-grad_entropy[start:end, None].float())
                if grad_log_probs is not None:
                    grad.addcmul_(p, grad_log_probs[start:end, None].float(), value=-1.0)
            if grad_log_probs is not None:
                grad[torch.arange(end - start), targets[start:end]] += grad_log_probs[start:end].float()
            if ctx.inv_temperature != 1.0:
                grad.mul_(ctx.inv_temperature)
            grad = grad.to(w.dtype)
            if need_hidden:
                grad_hidden[start:end] = torch.mm(grad, w)
            if need_weight:  # the chunks' partial gradients are summed in fp32
                part = torch.mm(grad.t(), h)
                grad_weight = part.float() if grad_weight is None else grad_weight.add_(part)
        return (grad_hidden.to(hidden.dtype) if need_hidden else None,
                grad_weight.to(weight.dtype) if need_weight else None, None, None, None)


class CpuTokenLogProbs:
    """Stands in for TRL's ``ChunkedLogProbFunction`` (same ``apply`` arguments and results): CPU
    tensors of a plain head (no bias, soft-capping or logit scale) go to ``TokenLogProbs``,
    everything else to TRL's kernel."""

    def __init__(self, trl_function):
        self.trl_function = trl_function

    def apply(self, hidden, weight, bias, targets, temperature, chunk_size, final_logit_softcapping=None,
              logit_scale=1.0, outputs=OUTPUTS):
        plain = (hidden.device.type == "cpu" and weight.device.type == "cpu" and bias is None
                 and final_logit_softcapping is None and logit_scale == 1.0
                 and type(weight) in (torch.Tensor, torch.nn.Parameter) and set(outputs) <= set(OUTPUTS) | {"log_probs"})
        if not plain:
            return self.trl_function.apply(hidden, weight, bias, targets, temperature, chunk_size,
                                           final_logit_softcapping, logit_scale, outputs)
        return TokenLogProbs.apply(hidden, weight, targets, 1.0 / temperature,
                                   tuple(name for name in OUTPUTS if name in outputs))


def install() -> None:
    """Route TRL's fused LM head through ``CpuTokenLogProbs`` (once per process)."""
    import trl.trainer.utils as trl_utils

    if not isinstance(trl_utils._ChunkedLogProbFunction, CpuTokenLogProbs):
        trl_utils._ChunkedLogProbFunction = CpuTokenLogProbs(trl_utils._ChunkedLogProbFunction)
