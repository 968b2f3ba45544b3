"""Attention with a learnable additive bias whose backward recomputes the probabilities.

PyTorch's CPU ``scaled_dot_product_attention`` has no fused backward for a mask that needs a
gradient: it takes the math path, which stores the ``(B, heads, Nq, Nk)`` probabilities of every
block for the backward (CMT-S at 800x1344: 282 MB per stage-1 block, 2.5 GB per image over the
model). :class:`RecomputedBiasAttention` runs the fused (flash) kernel forward, keeps only its
output and the per-query log-sum-exp, and in the backward recomputes the probabilities in bands
of queries, so that only one band's ``(B, heads, rows, Nk)`` matrices are alive at a time:

    S = q k^T * scale + bias,  P = exp(S - lse),  dP = dO v^T,  dS = P * (dP - rowsum(dO * O))
    dq = dS k * scale,  dk = dS^T q * scale,  dv = P^T dO,  dbias = dS summed over broadcast dims
"""
from typing import Any, Optional, Tuple

import torch
from torch.autograd.function import once_differentiable

# One band's (B, heads, rows, Nk) matrix takes about this many bytes in the backward.
BACKWARD_BAND_BYTES = 16 * 2**20


def _flash_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                   scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, False, attn_mask=mask, scale=scale)
    return out, lse


class RecomputedBiasAttention(torch.autograd.Function):
    """``softmax(q k^T * scale + mask) v`` on the CPU, differentiable in q, k, v and ``mask``.

    ``q``: ``(B, H, Nq, d)``; ``k``, ``v``: ``(B, H, Nk, d)``; ``mask``: 4-D, broadcastable to
    ``(B, H, Nq, Nk)`` (its gradient is summed over the broadcast dimensions).
    """

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                scale: float) -> torch.Tensor:
        out, lse = _flash_forward(q, k, v, mask, scale)
        ctx.save_for_backward(q, k, v, mask, out, lse)
        ctx.scale = scale
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
        q, k, v, mask, out, lse = ctx.saved_tensors
        scale = ctx.scale
        batch, heads, num_q, _ = q.shape
        num_k = k.shape[-2]
        need_q, need_k, need_v, need_mask = ctx.needs_input_grad[:4]
        grad_q = torch.empty_like(q) if need_q else None
        grad_k = torch.zeros_like(k) if need_k else None
        grad_v = torch.zeros_like(v) if need_v else None
        grad_mask = torch.zeros_like(mask) if need_mask else None
        # rowsum(dO * O) = rowsum(P * dP): the softmax backward's per-query term.
        delta = (grad_out * out).sum(-1, keepdim=True)
        rows = max(BACKWARD_BAND_BYTES // (batch * heads * num_k * q.element_size()), 1)
        per_query_mask = mask.shape[-2] != 1
        for top in range(0, num_q, rows):
            band = slice(top, min(top + rows, num_q))
            q_band, grad_out_band = q[:, :, band], grad_out[:, :, band]
            mask_band = mask[:, :, band] if per_query_mask else mask
            prob = (q_band @ k.transpose(-2, -1)).mul_(scale).add_(mask_band)
            prob = prob.sub_(lse[:, :, band, None]).exp_()
            grad_logits = (grad_out_band @ v.transpose(-2, -1)).sub_(delta[:, :, band])
            grad_logits = grad_logits.mul_(prob)
            if need_v:
                grad_v += prob.transpose(-2, -1) @ grad_out_band
            del prob
            if need_q:
                grad_q[:, :, band] = (grad_logits @ k).mul_(scale)
            if need_k:
                grad_k += (grad_logits.transpose(-2, -1) @ q_band).mul_(scale)
            if need_mask:
                if per_query_mask:
                    grad_mask[:, :, band] = grad_logits.sum_to_size(mask_band.shape)
                else:
                    grad_mask += grad_logits.sum_to_size(mask.shape)
        return grad_q, grad_k, grad_v, grad_mask, None


def use_recomputed_bias_attention(q: torch.Tensor, mask: Optional[torch.Tensor]) -> bool:
    """Whether :class:`RecomputedBiasAttention` replaces SDPA: a float32/float64 CPU call whose
    mask needs a gradient (elsewhere SDPA has a fused backward or the math path is kept)."""
    return (mask is not None and mask.requires_grad and torch.is_grad_enabled()
            and q.device.type == 'cpu' and q.dtype in (torch.float32, torch.float64)
            and mask.dtype == q.dtype and mask.dim() == 4)


def recomputed_bias_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                              mask: torch.Tensor, scale: Optional[float] = None) -> torch.Tensor:
    """``softmax(q k^T * scale + mask) v`` through :class:`RecomputedBiasAttention`."""
    scale = q.shape[-1]**-0.5 if scale is None else float(scale)
    return RecomputedBiasAttention.apply(q, k, v, mask, scale)
