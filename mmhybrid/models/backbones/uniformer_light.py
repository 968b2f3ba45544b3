"""UniFormer-light (Li et al., *UniFormer: Unifying Convolution and Self-attention for Visual
Recognition*, TPAMI 2023, arXiv 2201.09450), dense.

Semantics follow the authors' ``Sense-X/UniFormer`` code: the ImageNet model
``image_classification/models/uniformer_light.py`` and the detection/segmentation backbone
``object_detection/mmdet/models/backbones/uniformer_light.py`` (the segmentation copies are the
same file). Stages 1-2 are UniFormer's convolutional blocks; stages 3-4 are global-attention
blocks with a class token and Evo-ViT token pruning: each pruned block keeps the tokens the class
token attends to most, merges the others into one representative token, and updates them only
through that token's residuals. The dense code keeps the pruning. The module layout is mmhybrid's
own; ``mmhybrid.checkpoint.uniformer`` maps the released files onto it.
"""
from types import MappingProxyType
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath

from mmhybrid.registry import MODELS
from ..layers import (Mlp, Stage, TokenAttention, contiguous_for_inductor, grouped_attention,
                      init_official_weights_, maybe_checkpoint, merge_heads, split_heads)
from ..layers.folding import fold_identity_tap_
from .base import NUM_STAGES, HybridBackbone
from .uniformer import UniFormerConvBlock, UniFormerPatchEmbed

# The official dense code's per-output LayerNorm (read-only: a shared default).
DEFAULT_OUT_NORM = MappingProxyType(dict(type='LN', eps=1e-6))
# Token state carried from block to block and from stage 3 to stage 4: the class token
# ``(B, 1, C)`` and the global score of every map token ``(B, H*W)`` (``None`` before the first
# attention block has set it).
TokenState = Tuple[torch.Tensor, Optional[torch.Tensor]]


def evo_schedule(depths: Sequence[int], ratio: float = .5) -> List[List[float]]:
    """Per-block values of the official configs, in their format (one list per stage): the
    first attention block 1 (it sets the global score and prunes nothing), every other
    attention block ``ratio``."""
    return [[], [], [1.] + [ratio] * (depths[2] - 1), [ratio] * depths[3]]


class ClassAttention(TokenAttention):
    """:class:`TokenAttention` over ``(B, N, C)`` tokens whose first token is the class token;
    also returns the class token's attention to the other tokens, averaged over the heads
    (``(B, N - 1)``), which Evo-ViT uses as each token's score."""

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:  # type: ignore
        q, k, v = split_heads(self.qkv(x), 3, self.num_heads)  # B, heads, N, d each
        out = grouped_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        # Only the class token's row of the attention matrix is needed: one query row.
        logits = q[..., :1, :] @ k.transpose(-2, -1) * q.shape[-1]**-0.5
        scores = logits.softmax(dim=-1).mean(dim=1)[:, 0, 1:]
        return self.proj(merge_heads(out)), scores


def kept_tokens(n: int, ratio: float) -> int:
    """``int(n * ratio)``, the official count of kept tokens. For a ratio of a few binary digits
    (the official 0.5, or 0.25, 0.75, ...) it is computed as ``n * num // den`` (``ratio`` as an
    exact fraction), which equals the float product's truncation for any ``n`` below 2**31 and
    stays an integer expression when ``n`` is a traced size (a float product truncated to an
    int is not: inductor lowered the tiny arch's dynamic graph in 981 s with it, 788 s without;
    one run each)."""
    num, den = ratio.as_integer_ratio()
    if num.bit_length() <= 22:  # n * num < 2**53: the float product is exact
        return n * num // den
    return int(n * ratio)


def pool_scores(scores: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Global scores of an ``height x width`` map → those of the 2x downsampled map (2x2 mean,
    floor), rescaled to the same sum (the official last block of stage 3 does this)."""
    pooled = F.avg_pool2d(scores.reshape(-1, 1, height, width), 2).flatten(1)
    return pooled * (scores.sum(dim=1, keepdim=True) / pooled.sum(dim=1, keepdim=True))


class UniFormerEvoBlock(nn.Module):
    """Global MHRA block with a class token, optionally pruning tokens as Evo-ViT.

    ``x + DPE(x)``, then on ``[class token, tokens]``: ``t + DropPath(MHSA(LN(t)))`` and
    ``t + DropPath(MLP(LN(t)))``. The class token's attention row (mean over heads) updates the
    global score of the tokens: ``(1 - trade_off) * score + trade_off * row`` (the first
    attention block sets it).

    With ``prune_ratio < 1`` only the ``int(H*W * prune_ratio)`` tokens of highest score (the
    informative ones) go through the block, followed by one representative token, the
    score-weighted mean of the others. The others then receive the representative token's two
    residual updates (without drop path), and only the informative tokens' scores are updated —
    all of them when a single token was left out, whose score follows the representative's, as
    in the official code.

    Args:
        dim: Channels.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden channels / ``dim``.
        qkv_bias: Bias of the qkv projection.
        drop_path: Stochastic depth rate.
        prune_ratio: Share of the tokens kept, in ``(0, 1]``; ``1`` prunes nothing.
        trade_off: Weight of this block's attention row in the global score, in ``[0, 1]``.
        act_cfg: Activation of the MLP.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 mlp_ratio: float,
                 qkv_bias: bool,
                 drop_path: float,
                 prune_ratio: float,
                 trade_off: float,
                 act_cfg: Dict[str, Any]) -> None:
        super().__init__()
        self.prune_ratio = float(prune_ratio)
        self.trade_off = float(trade_off)
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ClassAttention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        # Whether the DPE's residual is its conv's centre tap (switch_to_deploy).
        self.pos_residual_folded = False

    def switch_to_deploy(self) -> None:
        """The DPE residual as its conv's centre tap."""
        fold_identity_tap_(self.pos_embed)
        self.pos_residual_folded = True

    def _transformer(self, t: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Both residual branches on ``t``; also the class token's attention row and the last
        token's two branch outputs summed (the representative token's update)."""
        attn, row = self.attn(self.norm1(t))
        t = t + self.drop_path(attn)
        mlp = self.mlp(self.norm2(t))
        return t + self.drop_path(mlp), row, attn[:, -1:] + mlp[:, -1:]

    def _mix(self, scores: Optional[torch.Tensor], row: torch.Tensor) -> torch.Tensor:
        if scores is None:
            return row
        return (1 - self.trade_off) * scores + self.trade_off * row

    def forward(self, x: torch.Tensor, cls_token: torch.Tensor,
                scores: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x``: ``(B, C, H, W)`` map; ``cls_token``: ``(B, 1, C)``; ``scores``: ``(B, H*W)``
        global scores or ``None`` (first attention block). Returns the three updated."""
        x = self.pos_embed(x) if self.pos_residual_folded else x + self.pos_embed(x)
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        if self.prune_ratio == 1:
            t, row, _ = self._transformer(torch.cat([cls_token, tokens], dim=1))
            tokens = t[:, 1:]
            scores = self._mix(scores, row)
        else:
            if scores is None:
                raise RuntimeError('a pruning block needs the global scores of an earlier '
                                   'attention block')
            n = h * w
            keep = kept_tokens(n, self.prune_ratio)
            order = torch.argsort(scores, dim=1, descending=True)
            index = order[..., None].expand(-1, -1, c)
            tokens = tokens.gather(1, index)
            scores = scores.gather(1, order)
            dropped, dropped_scores = tokens[:, keep:], scores[:, keep:]
            weights = dropped_scores / dropped_scores.sum(dim=1, keepdim=True)
            representative = (weights[..., None] * dropped).sum(dim=1, keepdim=True)
            t, row, update = self._transformer(
                torch.cat([cls_token, tokens[:, :keep], representative], dim=1))
            # One token left out: the representative's score is its score (official quirk).
            scored = keep + 1 if n - keep == 1 else keep
            scores = torch.cat([self._mix(scores[:, :scored], row[:, :scored]),
                                scores[:, scored:]], dim=1)
            tokens = torch.cat([t[:, 1:-1], dropped + update], dim=1)
            # Back to the map's order.
            tokens = torch.empty_like(tokens).scatter(1, index, tokens)
            scores = torch.empty_like(scores).scatter(1, order, scores)
        x = tokens.transpose(1, 2).reshape(b, c, h, w)
        # A channels-last view; contiguous while compiling (inductor fails to lower the view
        # into the next block's conv with dynamic sizes, see layers.lowering_for_inductor).
        return contiguous_for_inductor(x), t[:, :1], scores


class UniFormerEvoStage(Stage):
    """An attention stage of UniFormer-light: patch embedding, then blocks
    (:class:`UniFormerEvoBlock`) that pass the class token and the global scores along.

    The first attention stage owns the learnt class token; the next one maps the previous
    stage's class token to its width (``cls_upsample``) and pools the scores to its grid.

    Args:
        downsample: The patch embedding.
        blocks: The blocks.
        with_cp: Checkpoint every block.
        dim: Channels of the stage.
        in_dim: Channels of the previous attention stage, or ``None`` for the first.
    """

    def __init__(self,
                 downsample: nn.Module,
                 blocks: Sequence[nn.Module],
                 with_cp: bool,
                 dim: int,
                 in_dim: Optional[int]) -> None:
        super().__init__(downsample, blocks, with_cp)
        if in_dim is None:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        else:
            self.cls_upsample = nn.Linear(in_dim, dim)

    def forward(self, x: torch.Tensor,  # type: ignore[override]
                state: Optional[TokenState] = None) -> Tuple[torch.Tensor, TokenState]:
        """``state``: the previous attention stage's ``(class token, scores)``, ``None`` for
        the first. Returns the stage's map and its state."""
        if state is None:
            # A copy, not an expand() view: a view of a parameter made under no_grad requires
            # grad without a grad_fn, which module hooks (FlopCounterMode's tracker) reject.
            cls_token, scores = self.cls_token.repeat(x.shape[0], 1, 1), None
        else:
            cls_token, scores = state
            cls_token = self.cls_upsample(cls_token)
            scores = pool_scores(scores, *x.shape[2:])
        x = self.downsample(x)
        for block in self.blocks:
            x, cls_token, scores = maybe_checkpoint(block, x, cls_token, scores,
                                                    enabled=self.with_cp)
        return x, (cls_token, scores)


@MODELS.register_module()
class UniFormerLight(HybridBackbone):
    """UniFormer-light: UniFormer: Unifying Convolution and Self-attention for Visual
    Recognition (Li et al., TPAMI 2023), light variants, as a dense-prediction backbone.

    Stage 1 starts with the conv stem (``conv3x3 s2 → BN → GELU → conv3x3 s2 → BN``), stages
    2-4 with a patch convolution + LayerNorm; stages 1-2 use UniFormer's convolutional blocks,
    stages 3-4 :class:`UniFormerEvoBlock` (global attention with a class token and Evo-ViT token
    pruning, exactly as the official dense code). A newly initialised LayerNorm (eps 1e-6) is
    applied to each output as in the official dense code; ``stage_outputs()`` (or
    ``out_norm_cfg=None``) gives the raw stage maps.

    Args:
        arch: ``'xxs'`` or ``'xs'``, or a dict with ``embed_dims``, ``depths``, ``head_dim``
            and optionally ``mlp_ratio`` (3), ``prune_ratios`` and ``trade_offs`` (per stage,
            in the official format ``[[], [], [stage 3 ...], [stage 4 ...]]``; ``None``: the
            official schedule, stage-3 block 0 at 1 and every other attention block at 0.5).
            ``head_dim`` cannot be recovered from weights: it always comes from the arch.
        qkv_bias: Bias of the qkv projections.
        norm_cfg: BatchNorm of the conv blocks and the conv stem (``None``: ``dict(type='BN')``;
            ``SyncBN`` for multi-GPU training).
        act_cfg: Activation config (``None``: GELU).
        out_norm_cfg: Norm on each returned output (``None``: raw stage outputs).
        **kwargs: The contract arguments of :class:`HybridBackbone`: ``out_indices``,
            ``frozen_stages``, ``norm_eval``, ``with_cp``, ``drop_path_rate``, ``channels_last``
            and ``init_cfg`` (``Pretrained`` accepts the official ImageNet files and the official
            detection/segmentation checkpoints).
    """

    arch_zoo = {
        'xxs': dict(embed_dims=[56, 112, 224, 448], depths=[2, 5, 8, 2], head_dim=28),
        'xs': dict(embed_dims=[64, 128, 256, 512], depths=[3, 5, 9, 3], head_dim=32),
    }
    arch_keys = ('embed_dims', 'depths', 'head_dim')
    arch_defaults = dict(mlp_ratio=3., prune_ratios=None, trade_offs=None)
    family = 'uniformer_light'

    def __init__(self,
                 arch: Union[str, Dict[str, Any]] = 'xs',
                 qkv_bias: bool = True,
                 norm_cfg: Optional[Dict[str, Any]] = None,
                 act_cfg: Optional[Dict[str, Any]] = None,
                 out_norm_cfg: Optional[Mapping[str, Any]] = DEFAULT_OUT_NORM,
                 **kwargs: Any) -> None:
        super().__init__(arch=arch,
                         out_norm_cfg=None if out_norm_cfg is None else dict(out_norm_cfg),
                         **kwargs)
        norm_cfg = dict(type='BN') if norm_cfg is None else dict(norm_cfg)
        act_cfg = dict(type='GELU') if act_cfg is None else dict(act_cfg)
        settings = self.arch_settings
        dims, depths, head_dim = settings['embed_dims'], settings['depths'], settings['head_dim']
        mlp_ratio = settings['mlp_ratio']
        prune_ratios = settings['prune_ratios'] or evo_schedule(depths)
        trade_offs = settings['trade_offs'] or evo_schedule(depths)
        dpr = self.drop_path_rates(depths)
        in_channels = self.in_channels
        for i in range(NUM_STAGES):
            downsample = UniFormerPatchEmbed(in_channels, dims[i], 4 if i == 0 else 2,
                                             i == 0, norm_cfg, act_cfg)
            if i < 2:
                blocks = [UniFormerConvBlock(dims[i], mlp_ratio, dpr[i][j], norm_cfg, act_cfg)
                          for j in range(depths[i])]
                stage = Stage(downsample, blocks, self.cp_stages[i])
            else:
                blocks = [
                    UniFormerEvoBlock(dims[i], dims[i] // head_dim, mlp_ratio, qkv_bias,
                                      dpr[i][j], prune_ratios[i][j], trade_offs[i][j], act_cfg)
                    for j in range(depths[i])
                ]
                stage = UniFormerEvoStage(downsample, blocks, self.cp_stages[i], dims[i],
                                          None if i == 2 else dims[i - 1])
            self.stages.append(stage)
            in_channels = dims[i]
        # The official initialisation; convolutions and BatchNorms keep PyTorch's defaults,
        # the class token starts at zero.
        init_official_weights_(self, layer_norm=True)
        self._finish_build(dims)

    @classmethod
    def validate_arch(cls, settings: Dict[str, Any]) -> None:
        super().validate_arch(settings)
        head_dim = settings['head_dim']
        if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim < 1:
            raise ValueError(f'UniFormerLight arch head_dim must be a positive int, got '
                             f'{head_dim!r}')
        if any(dim % head_dim for dim in settings['embed_dims'][2:]):
            raise ValueError(f'UniFormerLight embed_dims {list(settings["embed_dims"])} of the '
                             f'attention stages (3, 4) are not multiples of head_dim {head_dim}')
        depths = settings['depths']
        for key, low, closed in (('prune_ratios', 0., False), ('trade_offs', 0., True)):
            schedule = settings[key]
            if schedule is None:
                continue
            lengths = [len(s) if isinstance(s, (list, tuple)) else None for s in schedule]
            if lengths != [0, 0, depths[2], depths[3]]:
                raise ValueError(f'UniFormerLight arch[{key!r}] must hold one value per '
                                 f'attention block, [[], [], [{depths[2]} values], '
                                 f'[{depths[3]} values]], got {schedule!r}')
            for value in [*schedule[2], *schedule[3]]:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                        not (low <= value if closed else low < value) or value > 1:
                    raise ValueError(f'UniFormerLight arch[{key!r}] values must be numbers in '
                                     f'{"[" if closed else "("}{low:g}, 1], got {value!r}')
        prune = settings['prune_ratios']
        if prune is not None and prune[2][0] != 1:
            raise ValueError(f'UniFormerLight arch[\'prune_ratios\'] must start stage 3 with 1: '
                             f'the first attention block sets the scores that pruning sorts '
                             f'by; got {prune[2][0]!r}')

    def _run_stages(self, x: torch.Tensor, last: int) -> Iterator[torch.Tensor]:
        """As :meth:`HybridBackbone._run_stages`, passing the class token and the global
        scores from stage 3 to stage 4."""
        x = self._enter(x)
        state = None
        for stage in self.stages[:last + 1]:
            if isinstance(stage, UniFormerEvoStage):
                x, state = stage(x, state)
            else:
                x = stage(x)
            yield x
