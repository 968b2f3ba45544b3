"""Attention kernels for :func:`~mmhybrid.models.layers.grouped_attention`'s ``kernel``.

:func:`short_key_kernel` (inference): calls over few keys in many groups (CrossFormer's 7x7
windows) run as batched products in chunks of groups, whose logits stay small: a lower peak than
one product over all groups, at the speed of the fused CPU kernel or better.

:func:`recomputed_bias_kernel` (training): PyTorch's CPU ``scaled_dot_product_attention`` has
no fused backward for a mask that needs a gradient: it takes the math path, which stores the
``(B, heads, Nq, Nk)`` probabilities of every block for the backward (CMT-S at 800x1344: 282 MB
per stage-1 block, 2.5 GB per image over the model). :class:`RecomputedBiasAttention` runs the
fused (flash) kernel forward, keeps only its output and the per-query log-sum-exp, and in the
backward recomputes the probabilities in bands of queries, so that only one band's
``(B, heads, rows, Nk)`` matrices are alive at a time:

    S = q k^T * scale + bias,  P = exp(S - lse),  dP = dO v^T,  dS = P * (dP - rowsum(dO * O))
    dq = dS k * scale,  dk = dS^T q * scale,  dv = P^T dO,  dbias = dS summed over broadcast dims
"""
from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import internals

# One band's (B, heads, rows, Nk) matrix takes about this many bytes in the backward.
BACKWARD_BAND_BYTES = 16 * 2**20


def _backward(grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              mask: torch.Tensor, out: torch.Tensor, lse: torch.Tensor, scale: float,
              needs: Sequence[bool]) -> Tuple[Optional[torch.Tensor], ...]:
    """The gradients of q, k, v and the mask (``None`` where ``needs`` is False) from the saved
    forward and the output's gradient (the formulas in the module docstring)."""
    need_q, need_k, need_v, need_mask = needs
    batch, heads, num_q, dim = q.shape
    num_k = k.shape[-2]
    flat = batch * heads
    q3, k3, v3 = (t.reshape(flat, -1, dim) for t in (q, k, v))
    grad_out3 = grad_out.reshape(flat, num_q, dim)
    # rowsum(dO * O) = rowsum(P * dP): the softmax backward's per-query term.
    delta = (grad_out3 * out.reshape(flat, num_q, dim)).sum(-1, keepdim=True)
    lse3 = lse.reshape(flat, num_q, 1).to(q.dtype)
    # One extra column folds the per-query shifts into the products:
    # [q * scale, -lse] [k, 1]^T = S - mask - lse and [dO, -delta] [v, 1]^T = dP - delta.
    ones = k3.new_ones(flat, num_k, 1)
    k_ext, v_ext = torch.cat([k3, ones], -1), torch.cat([v3, ones], -1)
    # Contiguous (q3 may be a strided view): its bands are written with ``out=``.
    grad_q = torch.empty_like(q3, memory_format=torch.contiguous_format) if need_q else None
    grad_k = torch.zeros_like(k3) if need_k else None
    grad_v = torch.zeros_like(v3) if need_v else None
    per_query_mask = mask.shape[-2] != 1
    grad_mask = None
    if need_mask:  # every row is written when the mask has one per query
        grad_mask = (torch.empty_like if per_query_mask else torch.zeros_like)(
            mask, memory_format=torch.contiguous_format)
    # The mask as a batch of (rows, Nk) matrices that baddbmm broadcasts, where it can.
    full_mask = mask.expand(batch, heads, num_q, num_k)
    unbroadcast = ((mask.shape[0] == batch or batch == 1) and mask.shape[1] == heads
                   and mask.shape[2] == num_q)
    mask3 = full_mask.reshape(flat, num_q, num_k) if unbroadcast else None
    rows = max(BACKWARD_BAND_BYTES // (flat * num_k * q.element_size()), 1)
    # With a mask of the full (B, H, Nq, Nk) shape, dS is written straight into its gradient.
    # (When B * H > 1 a band of it is not contiguous, and bmm would write through a copy.)
    direct = need_mask and tuple(mask.shape) == (batch, heads, num_q, num_k) and flat == 1
    for top in range(0, num_q, rows):
        band = slice(top, min(top + rows, num_q))
        q_band, grad_out_band = q3[:, band], grad_out3[:, band]
        q_ext = torch.cat([q_band * scale, -lse3[:, band]], -1)
        if mask3 is not None:
            prob = torch.baddbmm(mask3[:, band], q_ext, k_ext.transpose(1, 2))
        else:
            prob = torch.bmm(q_ext, k_ext.transpose(1, 2))
            prob = prob.view(batch, heads, -1, num_k).add_(full_mask[:, :, band])
            prob = prob.view(flat, -1, num_k)
        prob = prob.exp_()
        grad_out_ext = torch.cat([grad_out_band, -delta[:, band]], -1)
        if direct:
            grad_logits = grad_mask.view(flat, num_q, num_k)[:, band]
            torch.bmm(grad_out_ext, v_ext.transpose(1, 2), out=grad_logits)
        else:
            grad_logits = torch.bmm(grad_out_ext, v_ext.transpose(1, 2))
        grad_logits = grad_logits.mul_(prob)
        if need_v:
            grad_v.baddbmm_(prob.transpose(1, 2), grad_out_band)
        del prob
        if need_q:
            grad_q_band = grad_q[:, band]
            if grad_q_band.is_contiguous():
                torch.bmm(grad_logits, k3, out=grad_q_band)
            else:  # several heads' band: bmm would write through a copy (and dynamo
                # cannot trace a strided ``out=``)
                grad_q_band.copy_(torch.bmm(grad_logits, k3))
        if need_k:
            grad_k.baddbmm_(grad_logits.transpose(1, 2), q_band, alpha=scale)
        if need_mask and not direct:
            grad_band = grad_logits.view(batch, heads, -1, num_k)
            if per_query_mask:
                grad_mask[:, :, band] = grad_band.sum_to_size(mask[:, :, band].shape)
            else:
                grad_mask += grad_band.sum_to_size(mask.shape)
    if need_q:
        grad_q = grad_q.mul_(scale).view(q.shape)
    return (grad_q, None if grad_k is None else grad_k.view(k.shape),
            None if grad_v is None else grad_v.view(v.shape), grad_mask)


def _register_backward_op() -> Optional[Callable[..., Tuple[torch.Tensor, ...]]]:
    """:func:`_backward` as the custom op ``mmhybrid::recomputed_bias_attention_backward``
    (torch >= 2.4; ``None`` before).

    Inside ``torch.compile`` the backward is called through it: inductor runs the op as it is,
    with its in-place band updates, instead of tracing the bands into out-of-place batched
    products (CrossFormer-S compiled training at 800x1344 spent 1.87 s in those against
    eager's 1.24 s). Gradients that are not needed come back as empty tensors."""
    if not hasattr(torch.library, 'custom_op'):
        return None

    @torch.library.custom_op('mmhybrid::recomputed_bias_attention_backward', mutates_args=())
    def backward_op(grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                    v: torch.Tensor, mask: torch.Tensor, out: torch.Tensor, lse: torch.Tensor,
                    scale: float, needs: List[bool]
                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        grads = _backward(grad_out, q, k, v, mask, out, lse, scale, needs)
        return tuple(q.new_empty(0) if g is None else g.contiguous() for g in grads)

    @backward_op.register_fake
    def _(grad_out, q, k, v, mask, out, lse, scale, needs):
        return tuple(t.new_empty(t.shape if need else (0,))
                     for t, need in zip((q, k, v, mask), needs))

    return backward_op


_backward_op = _register_backward_op()


class RecomputedBiasAttention(torch.autograd.Function):
    """``softmax(q k^T * scale + mask) v`` on the CPU, differentiable in q, k, v and ``mask``.

    ``q``: ``(B, H, Nq, d)``; ``k``, ``v``: ``(B, H, Nk, d)``; ``mask``: 4-D, broadcastable to
    ``(B, H, Nq, Nk)`` (its gradient is summed over the broadcast dimensions).
    """

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                scale: float) -> torch.Tensor:
        out, lse = internals.flash_attention_with_lse(q, k, v, mask, scale)
        ctx.save_for_backward(q, k, v, mask, out, lse)
        ctx.scale = scale
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
        saved = ctx.saved_tensors
        needs = list(ctx.needs_input_grad[:4])
        if _backward_op is not None and torch.compiler.is_compiling():
            # One opaque call in a compiled graph (see _backward_op).
            grads = _backward_op(grad_out.contiguous(), *saved, ctx.scale, needs)
            return tuple(g if need else None for g, need in zip(grads, needs)) + (None,)
        return _backward(grad_out, *saved, ctx.scale, needs) + (None,)


def recomputed_bias_applies(q: torch.Tensor, mask: Optional[torch.Tensor]) -> bool:
    """Whether :class:`RecomputedBiasAttention` serves a call: a float32/float64 CPU call whose
    4-D mask needs a gradient (elsewhere SDPA has a fused backward or nothing is stored)."""
    return (mask is not None and mask.requires_grad and torch.is_grad_enabled()
            and q.device.type == 'cpu' and q.dtype in (torch.float32, torch.float64)
            and mask.dtype == q.dtype and mask.dim() == 4)


def recomputed_bias_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                           mask: Optional[torch.Tensor], scale: Optional[float]) -> torch.Tensor:
    """An attention kernel (``grouped_attention``'s ``kernel``): :func:`recomputed_bias_attention`
    where :func:`recomputed_bias_applies`, SDPA otherwise."""
    if recomputed_bias_applies(q, mask):
        return recomputed_bias_attention(q, k, v, mask, scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def recomputed_bias_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                              mask: torch.Tensor, scale: Optional[float] = None) -> torch.Tensor:
    """``softmax(q k^T * scale + mask) v`` through :class:`RecomputedBiasAttention`."""
    scale = q.shape[-1]**-0.5 if scale is None else float(scale)
    return RecomputedBiasAttention.apply(q, k, v, mask, scale)


# Calls over at most this many keys run as explicit products (:func:`short_key_attention`), in
# chunks of groups whose logits take about SHORT_KEY_CHUNK_BYTES.
SHORT_KEYS = 64
SHORT_KEY_CHUNK_BYTES = 2**20


def short_key_applies(q: torch.Tensor, k: torch.Tensor, mask: Optional[torch.Tensor]) -> bool:
    """Whether :func:`short_key_attention` serves ``(N, heads, L, d)`` operands: float32 CPU
    tensors, at most :data:`SHORT_KEYS` keys, two or more groups (windows or images: over one
    group the fused kernel is as fast) whose logits take at most 8 chunks' bytes each."""
    groups, heads, num_q, num_k = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
    return (groups > 1 and num_k <= SHORT_KEYS and q.device.type == 'cpu'
            and q.dtype == torch.float32 and k.dtype == q.dtype
            and (mask is None or mask.dtype == q.dtype)
            and heads * num_q * num_k * q.element_size() <= 8 * SHORT_KEY_CHUNK_BYTES)


def short_key_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     mask: Optional[torch.Tensor], scale: Optional[float]) -> torch.Tensor:
    """An attention kernel for inference (``grouped_attention``'s ``kernel``):
    :func:`short_key_attention` where :func:`short_key_applies`, SDPA otherwise."""
    if short_key_applies(q, k, mask):
        return short_key_attention(q, k, v, mask, scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def short_key_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        mask: Optional[torch.Tensor], scale: Optional[float]) -> torch.Tensor:
    """``softmax(q k^T * scale + mask) v`` for ``(N, heads, L, d)`` operands as batched
    products, in chunks of the ``N`` groups whose logits take about
    :data:`SHORT_KEY_CHUNK_BYTES` (inference only: nothing is kept for a backward).

    ``mask`` broadcasts to ``(N, heads, Lq, Lk)`` (its first dimension 1 or ``N``). The result
    is laid out ``(N, Lq, heads, d)`` as SDPA's CPU kernel lays out its own, so that merging
    the heads is a view."""
    groups, heads, num_q, dim = q.shape
    num_k = k.shape[2]
    scale = dim**-0.5 if scale is None else scale
    out = q.new_empty(groups, num_q, heads, dim)
    step = max(1, SHORT_KEY_CHUNK_BYTES // (heads * num_q * num_k * q.element_size()))
    for start in range(0, groups, step):
        stop = min(start + step, groups)
        count = (stop - start) * heads
        keys_t = k[start:stop].reshape(count, num_k, dim).transpose(1, 2)
        queries = q[start:stop].reshape(count, num_q, dim)
        part = None
        if mask is not None:
            part = mask if mask.shape[0] == 1 else mask[start:stop]
        if part is not None and stop - start == 1:
            # One image of the mask: the product adds it itself.
            logits = torch.baddbmm(part.expand(1, heads, num_q, num_k).reshape(
                count, num_q, num_k), queries, keys_t, alpha=scale)
        else:
            logits = torch.bmm(queries, keys_t).mul_(scale)
            if part is not None:  # broadcast over the chunk's groups
                logits.view(stop - start, heads, num_q, num_k).add_(part)
        probs = torch.softmax(logits, -1)
        del logits
        values = torch.bmm(probs, v[start:stop].reshape(count, num_k, dim))
        out[start:stop].copy_(values.view(stop - start, heads, num_q, dim).transpose(1, 2))
    return out.transpose(1, 2)
