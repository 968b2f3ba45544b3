"""The scaled-dot-product attention core every attention family shares.

Tokens are split into heads, attention runs through PyTorch's
``scaled_dot_product_attention`` and the heads are merged again. An additive bias (shared by
every group) and a key-padding mask (one row per group) broadcast over the batch and the groups
instead of being repeated per image: the fused CPU kernel accepts such 4-D masks, while a
3-D mask, a mask that requires grad under ``no_grad``, or q/k/v with a non-unit last stride
silently send it to the math path that materialises the logits. CUDA's fused kernels also
need the mask's last dimension to have unit stride. A bias that needs a gradient has no fused
CPU backward: such calls go through :mod:`.attention_grad` (fused forward, probabilities
recomputed in the backward instead of stored).

Eager inference on the CPU over few keys (windows, reduced key grids: at most
:data:`SHORT_KEYS`) runs as explicit products instead (:func:`short_key_attention`): the fused
kernel is slower there (7x7 windows: 1.4-1.7x, docs/benchmarks.md, session 19), and chunks of
groups keep the explicit logits small.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention_grad import recomputed_bias_attention, use_recomputed_bias_attention
from .chunking import eager_inference
from .linear import Linear

# The official codes mask padded keys by adding -1e6 (not -inf): a group made only of padding
# then still has a finite softmax (its outputs are discarded with the padding).
PADDING_MASK_VALUE = -1e6

# Switch for tests and A/B measurements: False keeps SDPA for every call.
SHORT_KEY_ATTENTION = True
# Calls over at most this many keys may run as explicit products (:func:`short_key_attention`),
# in chunks of groups whose logits take about SHORT_KEY_CHUNK_BYTES.
SHORT_KEYS = 64
SHORT_KEY_CHUNK_BYTES = 2**20


def split_heads(x: torch.Tensor, parts: int, num_heads: int) -> Tuple[torch.Tensor, ...]:
    """``(..., N, parts * C)`` tokens → ``parts`` views ``(..., heads, N, C / heads)``.

    ``parts = 3`` splits a fused qkv projection; heads are contiguous blocks of channels.
    """
    *lead, tokens, channels = x.shape
    x = x.reshape(*lead, tokens, parts, num_heads, channels // (parts * num_heads))
    return x.movedim(-3, 0).transpose(-3, -2).unbind(0)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(..., heads, N, d)`` → ``(..., N, heads * d)``."""
    x = x.transpose(-3, -2)
    if torch.compiler.is_exporting():
        # The CPU SDPA kernel returns (N, heads, d)-laid-out outputs, so export records a view
        # here; its decomposition of SDPA for ONNX returns (heads, N, d), and the view fails.
        # An explicit copy holds for both layouts.
        x = x.clone(memory_format=torch.contiguous_format)
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


def padding_bias(key_padding: torch.Tensor, dtype: torch.dtype,
                 value: float = PADDING_MASK_VALUE) -> torch.Tensor:
    """Additive mask ``(G, 1, 1, N)``: 0 for real keys, ``value`` (a large negative) for padding.

    The value is clamped to stay finite in ``dtype`` (half precision too), so fully padded
    groups keep a finite softmax.
    """
    fill = max(value, -torch.finfo(dtype).max / 4)
    mask = torch.zeros(key_padding.shape, dtype=dtype, device=key_padding.device)
    return mask.masked_fill(key_padding, fill)[:, None, None, :]


def grouped_attention(q: torch.Tensor,
                      k: torch.Tensor,
                      v: torch.Tensor,
                      bias: Optional[torch.Tensor] = None,
                      key_padding: Optional[torch.Tensor] = None,
                      scale: Optional[float] = None) -> torch.Tensor:
    """Multi-head attention inside independent groups (windows) of tokens.

    Args:
        q: Queries ``(B, G, heads, Nq, d)``; ``G`` groups attend separately (``G = 1`` for
            global attention).
        k: Keys ``(B, G, heads, Nk, d)``.
        v: Values ``(B, G, heads, Nk, d)``.
        bias: Additive logits bias ``(heads, Nq, Nk)`` shared by every image and group, or
            ``None``.
        key_padding: ``(G, Nk)`` booleans, True where a key is padding (the same in every
            image), or ``None``.
        scale: Logit scale; ``None`` means ``d ** -0.5``.

    Returns:
        ``(B, G, heads, Nq, d)``.

    While compiling on the CPU, a bias together with a key padding is passed as the bias
    alone, the padding riding on one more q/k/v channel (:func:`padding_as_key_channel`).
    """
    batch, groups, heads, num_q, dim = q.shape
    num_k = k.shape[-2]
    if bias is not None and key_padding is not None and torch.compiler.is_compiling() \
            and q.device.type == 'cpu':
        scale = dim**-0.5 if scale is None else scale
        q, k, v = padding_as_key_channel(q, k, v, key_padding, scale)
        key_padding = None
    mask = None if bias is None else bias.to(q.dtype)[None]  # 1, heads, Nq, Nk
    if key_padding is None or batch == 1:
        # Images and groups share one batch dimension; a padding mask (G rows) only fits it
        # when there is a single image.
        q, k, v = (t.reshape(batch * groups, heads, -1, t.shape[-1]) for t in (q, k, v))
        if key_padding is not None:
            pad = padding_bias(key_padding, q.dtype)  # G, 1, 1, Nk
            mask = pad if mask is None else mask + pad
    else:
        # Groups and heads share one dimension, so that the mask broadcasts over the images.
        q, k, v = (t.reshape(batch, groups * heads, -1, t.shape[-1]) for t in (q, k, v))
        pad = padding_bias(key_padding, q.dtype)  # G, 1, 1, Nk
        mask = pad.expand(groups, heads, 1, num_k) if mask is None else mask + pad
        mask = mask.reshape(1, groups * heads, -1, num_k)
    if mask is not None and mask.stride(-1) != 1:
        # CUDA's fused kernels need a unit last-dim stride in the mask too (the CPU's do not).
        mask = mask.contiguous()
    if use_recomputed_bias_attention(q, mask):
        # A learnable bias on the CPU: SDPA would store the probabilities for its backward.
        out = recomputed_bias_attention(q, k, v, mask, scale)
    elif use_short_key_attention(q, k, mask):
        out = short_key_attention(q, k, v, mask, scale)
    else:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    if out.shape[-1] != dim:  # the padding channel (padding_as_key_channel)
        out = out[..., :dim]
    return out.reshape(batch, groups, heads, num_q, dim)


def use_short_key_attention(q: torch.Tensor, k: torch.Tensor,
                            mask: Optional[torch.Tensor]) -> bool:
    """Whether :func:`short_key_attention` replaces SDPA for ``(N, heads, L, d)`` operands:
    eager inference (:func:`.chunking.eager_inference`) on float32 CPU tensors, over at most
    :data:`SHORT_KEYS` keys, in two or more groups (windows or images: one group's call gained
    nothing, CMT-S at 224 lost 2-4%) whose logits take at most 8 chunks' bytes each."""
    # Eager inference first: a traced call must not reach the size tests (a guard on them
    # would recompile a dynamic graph).
    if not (SHORT_KEY_ATTENTION and eager_inference()):
        return False
    groups, heads, num_q, num_k = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
    return (groups > 1 and num_k <= SHORT_KEYS and q.device.type == 'cpu'
            and q.dtype == torch.float32 and k.dtype == q.dtype
            and (mask is None or mask.dtype == q.dtype)
            and heads * num_q * num_k * q.element_size() <= 8 * SHORT_KEY_CHUNK_BYTES)


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


def padding_as_key_channel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                           key_padding: torch.Tensor,
                           scale: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``q``, ``k``, ``v`` ``(B, G, heads, N, d)`` with one more channel that carries the key
    padding: 1 in every query, ``PADDING_MASK_VALUE / scale`` in padded keys (0 in the others),
    0 in every value; attention over them with a logits scale of ``scale`` equals attention
    with the padding mask of :func:`padding_bias` (the extra channel of the output is 0).

    Used in compiled graphs on the CPU, where a bias shared by the groups plus a per-group
    padding mask would be materialised as one ``(G, heads, Nq, Nk)`` mask (847 MB for
    CrossFormer-S's long-distance groups at 800x1344, most of a compiled forward's time); the
    channel keeps the mask at the bias's ``(heads, Nq, Nk)``.
    """
    batch, groups, heads, num_q, _ = q.shape
    num_k = k.shape[-2]
    # The padding value over the scale, as one key channel shared by the images and heads.
    column = padding_bias(key_padding, k.dtype, PADDING_MASK_VALUE / scale).reshape(
        1, groups, 1, num_k, 1)
    return (torch.cat([q, q.new_ones(batch, groups, heads, num_q, 1)], -1),
            torch.cat([k, column.expand(batch, groups, heads, num_k, 1)], -1),
            torch.cat([v, v.new_zeros(batch, groups, heads, num_k, 1)], -1))


class TokenAttention(nn.Module):
    """Multi-head self-attention over groups of tokens: one qkv Linear, SDPA, a Linear output.

    Args:
        dim: Channels.
        num_heads: Number of heads.
        qkv_bias: Bias of the qkv projection.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 qkv_bias: bool) -> None:
        super().__init__()
        if num_heads <= 0 or dim % num_heads:
            raise ValueError(f'attention channels {dim} are not divisible by {num_heads} heads')
        self.num_heads = num_heads
        self.qkv = Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = Linear(dim, dim)

    def forward(self,
                x: torch.Tensor,
                bias: Optional[torch.Tensor] = None,
                key_padding: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x``: ``(B, G, N, C)`` tokens in ``G`` groups; ``bias``/``key_padding`` as in
        :func:`grouped_attention`. Returns ``(B, G, N, C)``."""
        q, k, v = split_heads(self.qkv(x), 3, self.num_heads)
        return self.proj(merge_heads(grouped_attention(q, k, v, bias, key_padding)))
