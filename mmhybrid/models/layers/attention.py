"""The scaled-dot-product attention core every attention family shares.

Tokens are split into heads, attention runs through PyTorch's
``scaled_dot_product_attention`` and the heads are merged again. An additive bias (shared by
every group) and a key-padding mask (one row per group) broadcast over the batch and the groups
instead of being repeated per image: the fused CPU kernel accepts such 4-D masks, while a
3-D mask or q/k/v with a non-unit last stride silently send it to the math path that
materialises the logits. CUDA's fused kernels also need the mask's last dimension to have unit
stride.

A module that attends over few keys in many groups (CrossFormer's 7x7 windows) may choose, once
at construction, the explicit formula (:func:`explicit_attention`: three products, as the
authors' codes write it), which is faster than the fused kernel there on the CPU. A module may
also be given another attention kernel (``kernel``: the same signature as
:func:`attention_kernel`), as :mod:`mmhybrid.accel` does.
"""
from typing import Callable, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .tracing import compiling, exporting

# The official codes mask padded keys by adding -1e6 (not -inf): a group made only of padding
# then still has a finite softmax (its outputs are discarded with the padding).
PADDING_MASK_VALUE = -1e6

# The kernel of :func:`grouped_attention`: (q, k, v, mask, scale) -> out, on (N, heads, L, d)
# operands and a mask that broadcasts to (N, heads, Lq, Lk).
AttentionKernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Optional[torch.Tensor],
                            Optional[float]], torch.Tensor]


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
    if exporting():
        # The CPU SDPA kernel returns (N, heads, d)-laid-out outputs, so export records a view
        # here; its decomposition of SDPA for ONNX returns (heads, N, d), and the view fails.
        # An explicit copy holds for both layouts.
        x = x.clone(memory_format=torch.contiguous_format)
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


def detached_without_autograd(t: torch.Tensor) -> torch.Tensor:
    """``t``, detached when autograd records nothing: under ``no_grad`` a view of a parameter
    (a position bias at its stored size) still requires grad, and SDPA then takes its math
    path, which materialises the logits."""
    return t.detach() if t.requires_grad and not torch.is_grad_enabled() else t


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
                      scale: Optional[float] = None,
                      fused: bool = True,
                      kernel: Optional[AttentionKernel] = None) -> torch.Tensor:
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
        fused: SDPA (True) or :func:`explicit_attention` (False), see :func:`attention_kernel`.
        kernel: Another attention kernel with :func:`attention_kernel`'s signature, or
            ``None``.

    Returns:
        ``(B, G, heads, Nq, d)``.

    While compiling on the CPU, a bias together with a key padding is passed as the bias
    alone, the padding riding on one more q/k/v channel (:func:`padding_as_key_channel`).
    """
    batch, groups, heads, num_q, dim = q.shape
    num_k = k.shape[-2]
    if bias is not None and key_padding is not None and compiling() and q.device.type == 'cpu':
        scale = dim**-0.5 if scale is None else scale
        q, k, v = padding_as_key_channel(q, k, v, key_padding, scale)
        key_padding = None
    mask = None if bias is None else detached_without_autograd(bias).to(q.dtype)[None]
    if key_padding is None or batch == 1:
        # Images and groups share one batch dimension; a padding mask (G rows) only fits it
        # when there is a single image.
        q = q.reshape(batch * groups, heads, num_q, -1)
        k = k.reshape(batch * groups, heads, num_k, -1)
        v = v.reshape(batch * groups, heads, num_k, -1)
        if key_padding is not None:
            pad = padding_bias(key_padding, q.dtype)  # G, 1, 1, Nk
            mask = pad if mask is None else mask + pad
    else:
        # Groups and heads share one dimension, so that the mask broadcasts over the images.
        q = q.reshape(batch, groups * heads, num_q, -1)
        k = k.reshape(batch, groups * heads, num_k, -1)
        v = v.reshape(batch, groups * heads, num_k, -1)
        pad = padding_bias(key_padding, q.dtype)  # G, 1, 1, Nk
        mask = pad.expand(groups, heads, 1, num_k) if mask is None else mask + pad
        mask = mask.reshape(1, groups * heads, -1, num_k)
    if mask is not None and mask.stride(-1) != 1:
        # CUDA's fused kernels need a unit last-dim stride in the mask too (the CPU's do not).
        mask = mask.contiguous()
    out = kernel(q, k, v, mask, scale) if kernel else attention_kernel(q, k, v, mask, scale, fused)
    if out.shape[-1] != dim:  # the padding channel (padding_as_key_channel)
        out = out[..., :dim]
    return out.reshape(batch, groups, heads, num_q, dim)


def attention_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     mask: Optional[torch.Tensor], scale: Optional[float],
                     fused: bool = True) -> torch.Tensor:
    """``softmax(q k^T * scale + mask) v`` for ``(N, heads, L, d)`` operands and a mask that
    broadcasts to ``(N, heads, Lq, Lk)``: through ``scaled_dot_product_attention`` when
    ``fused``, else :func:`explicit_attention`."""
    if fused:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    return explicit_attention(q, k, v, mask, scale)


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                       mask: Optional[torch.Tensor], scale: Optional[float]) -> torch.Tensor:
    """``softmax(q k^T * scale + mask) v`` as written: the logits, their softmax and the
    weighted values as three products over ``(N, heads, L, d)`` operands."""
    scale = q.shape[-1]**-0.5 if scale is None else scale
    logits = (q * scale) @ k.transpose(-2, -1)
    if mask is not None:
        logits = logits + mask
    return logits.softmax(-1) @ v


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
        fused: SDPA (True) or the explicit formula (False), see :func:`grouped_attention`.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 qkv_bias: bool,
                 fused: bool = True) -> None:
        super().__init__()
        if num_heads <= 0 or dim % num_heads:
            raise ValueError(f'attention channels {dim} are not divisible by {num_heads} heads')
        self.num_heads = num_heads
        self.fused = fused
        # Another attention kernel (grouped_attention's ``kernel``), or None.
        self.kernel: Optional[AttentionKernel] = None
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self,
                x: torch.Tensor,
                bias: Optional[torch.Tensor] = None,
                key_padding: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x``: ``(B, G, N, C)`` tokens in ``G`` groups; ``bias``/``key_padding`` as in
        :func:`grouped_attention`. Returns ``(B, G, N, C)``."""
        q, k, v = split_heads(self.qkv(x), 3, self.num_heads)
        out = grouped_attention(q, k, v, bias, key_padding, fused=self.fused, kernel=self.kernel)
        return self.proj(merge_heads(out))
