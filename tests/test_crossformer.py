"""CrossFormer and CrossFormer++: padding/masking, LDA modes, group layouts, activation cooling
layers, options. Parity (both official codes) and checkpoint conversion are in test_parity.py
and test_converters.py."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from archs import PARITY_MODELS
from helpers import (assert_conv_rewrite_exact, assert_stages_close, converted_model,
                     converted_weights, official_checkpoint, parity_case)
from mmhybrid.checkpoint import CheckpointMismatchError
from mmhybrid.models import CrossFormer
from mmhybrid.accel import crossformer as accel_crossformer
from mmhybrid.accel import layers as accel_layers
from mmhybrid.accel.attention import short_key_kernel
from mmhybrid.accel.crossformer import ChunkedCrossFormerBlock, group_chunks
from mmhybrid.accel.layers import FastMlp, SpaceToDepthConv2d, space_to_depth_conv
from mmhybrid.models.backbones.crossformer import (CrossFormerBlock, CrossScaleMerging,
                                                   CrossScalePatchEmbed, has_cooling)
from mmhybrid.models.layers import group_shape

# crossformer_tiny_reduced*.pth: CrossFormer-T layout with dims 16..128 and depths 2,2,2,2.
REDUCED_T = PARITY_MODELS['crossformer_tiny_reduced'][1]


def reduced_model(**kwargs) -> CrossFormer:
    return CrossFormer(arch=REDUCED_T, **kwargs)


# ---------------------------------------------------------------------------------- parity
def test_parity_references_of_the_two_lda_modes_differ_at_detection_size():
    # Guards the data: the reference tensors of the two codes really differ.
    data = parity_case('crossformer_tiny_reduced_det')
    diff = (data['stages'][0] - data['stages_iclr'][0]).abs().max()
    assert diff > 0.1


def test_parity_unchanged_after_small_inputs():
    # The official code switches blocks to SDA for good after a small map; mmhybrid decides
    # per input, so a small input leaves later results untouched.
    data = parity_case('crossformer_tiny_reduced_det')
    model = converted_model('crossformer_tiny_reduced', lda_mode='iclr')
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = [(b.group_size, b.interval, b.long_distance) for s in model.stages for b in s.blocks]
    with torch.no_grad():
        model(torch.randn(1, 3, 40, 60))
        model(torch.randn(1, 3, 64, 64))
        outs = model(data['inputs'])
    assert_stages_close(outs, data['stages_iclr'], data['meta']['tolerances']['float32_impl'])
    assert settings == [(b.group_size, b.interval, b.long_distance)
                        for s in model.stages for b in s.blocks]
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


# ------------------------------------------------------------------- grouping and masking
def make_block(long_distance: bool, lda_mode: str, group_size: int = 3,
               interval: int = 2) -> CrossFormerBlock:
    torch.manual_seed(0)
    block = CrossFormerBlock(dim=32, num_heads=2, group_size=group_size, interval=interval,
                             long_distance=long_distance, lda_mode=lda_mode, mlp_ratio=2.,
                             qkv_bias=True, drop_path=0., act_cfg=dict(type='GELU'))
    for p in block.parameters():  # non-trivial norms and biases
        torch.nn.init.normal_(p, std=0.3 if p.dim() == 1 else 0.5)
    return block.eval()


def reference_attention(block: CrossFormerBlock, x: torch.Tensor) -> torch.Tensor:
    """Dense attention over the real tokens only, groups defined by coordinates.

    Every token attends to the real tokens of its group; the position bias comes from the DPB
    table at the group-coordinate offset. No padding is involved at all.
    """
    _, height, width, channels = x.shape
    size, interval = block.group_size, block.interval
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    if min(height, width) <= size:
        size = min(height, width) if block.lda_mode == 'iclr' else max(height, width)
        kind = 'sda'
    else:
        kind = 'lda' if block.long_distance else 'sda'
    if kind == 'sda':
        group_id = torch.stack([ys // size, xs // size], 1)
        coord = torch.stack([ys % size, xs % size], 1)
        shape = (size, size)
    elif block.lda_mode == 'iclr':
        group_id = torch.stack([ys % interval, xs % interval], 1)
        coord = torch.stack([ys // interval, xs // interval], 1)
        shape = (math.ceil(height / interval), math.ceil(width / interval))
    else:
        region = size * interval
        group_id = torch.stack([ys // region, xs // region, ys % interval, xs % interval], 1)
        coord = torch.stack([(ys % region) // interval, (xs % region) // interval], 1)
        shape = (size, size)
    same = (group_id[:, None] == group_id[None]).all(-1)
    dpb = block.attn.pos
    dy = torch.arange(1 - shape[0], shape[0])
    dx = torch.arange(1 - shape[1], shape[1])
    offsets = torch.stack(torch.meshgrid(dy, dx, indexing='ij'), -1).reshape(-1, 2).to(x.dtype)
    table = dpb.pos3(dpb.pos2(dpb.pos1(dpb.pos_proj(offsets))))  # T, heads
    rel = coord[:, None] - coord[None]
    bias = table[(rel[..., 0] + shape[0] - 1) * (2 * shape[1] - 1) + rel[..., 1] + shape[1] - 1]
    heads = block.attn.num_heads
    qkv = block.attn.qkv(x.reshape(-1, height * width, channels))
    q, k, v = qkv.reshape(-1, height * width, 3, heads, channels // heads).permute(2, 0, 3, 1, 4)
    logits = q @ k.transpose(-2, -1) * (channels // heads)**-0.5 + bias.permute(2, 0, 1)
    logits = logits.masked_fill(~same, float('-inf'))
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(-1, height, width, channels)
    return block.attn.proj(out)


@pytest.mark.parametrize('lda_mode', ['iclr', 'regional'])
@pytest.mark.parametrize('long_distance', [False, True])
@pytest.mark.parametrize('size', [(12, 12), (13, 17), (7, 11), (3, 5), (2, 9)])
def test_padding_and_masking_equal_attention_over_real_tokens(lda_mode, long_distance, size):
    block = make_block(long_distance, lda_mode).double()
    x = torch.randn(2, *size, 32, dtype=torch.float64)
    with torch.no_grad():
        mine = block._attention(x)
        ref = reference_attention(block, x)
    torch.testing.assert_close(mine, ref, rtol=1e-10, atol=1e-10)


def plain_block(block: CrossFormerBlock, x: torch.Tensor) -> torch.Tensor:
    """The block through its unchunked path."""
    x = x + block._attention(block.norm1(x))
    return x + block.mlp(block.norm2(x))


def chunked(block: CrossFormerBlock) -> ChunkedCrossFormerBlock:
    """A copy of ``block`` with the modules optimize_for_inference swaps in."""
    fast = copy.deepcopy(block)
    fast.__class__ = ChunkedCrossFormerBlock
    fast.mlp.__class__ = FastMlp
    fast.attn.kernel = short_key_kernel
    return fast


@pytest.mark.parametrize('lda_mode', ['iclr', 'regional'])
@pytest.mark.parametrize('long_distance', [False, True])
@pytest.mark.parametrize('size', [(12, 12), (13, 17), (25, 9), (2, 9)])
@pytest.mark.parametrize('chunk_bytes', [1, 3 * 32 * 8 * 40, 1 << 30])
def test_chunked_inference_equals_the_plain_block(lda_mode, long_distance, size, chunk_bytes,
                                                  monkeypatch):
    # Chunks of one phase, of several phases or region rows, and one chunk; padded sizes.
    monkeypatch.setattr(accel_crossformer, 'CHUNK_BYTES', chunk_bytes)
    block = make_block(long_distance, lda_mode).double()
    fast = chunked(block)
    x = torch.randn(2, *size, 32, dtype=torch.float64)
    before = x.clone()
    with torch.no_grad():
        got = fast(x)
        want = block(x)
        assert torch.equal(want, plain_block(block, x))
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(x, before, rtol=0, atol=0)  # the input is not written
    assert got.is_contiguous() and not x.isnan().any()


def test_group_chunks_cover_every_group_once():
    for regions, stride, phase_tokens, budget in [(4, 8, 10, 1), (4, 8, 10, 35), (4, 8, 10, 80),
                                                  (4, 8, 10, 250), (3, 1, 7, 1000), (1, 8, 9, 9)]:
        seen = torch.zeros(regions, stride, dtype=torch.long)
        chunks = group_chunks(regions, stride, phase_tokens, budget)
        for rows, phases in chunks:
            seen[rows, phases] += 1
        assert (seen == 1).all()
        if stride * phase_tokens <= budget:
            assert len(chunks) == math.ceil(regions / (budget // (stride * phase_tokens)))


def test_group_layouts():
    iclr, regional = make_block(True, 'iclr', 7, 8), make_block(True, 'regional', 7, 8)
    # 8x8 groups of 8x10 tokens: one region over each (padded) axis.
    assert iclr.group_layout(64, 80) == ((None, 8), (None, 8))
    assert group_shape(*iclr.group_layout(64, 80), (64, 80)) == (8, 10)
    assert group_shape(*iclr.group_layout(57, 75), (57, 75)) == (8, 10)
    assert regional.group_layout(64, 80) == ((7, 8), (7, 8))  # 7x7 groups, stride 8
    # Small maps: one SDA group size, min(H, W) (ICLR code) or max(H, W) (main branch).
    assert iclr.group_layout(5, 12) == ((5, 1), (5, 1))
    assert regional.group_layout(5, 12) == ((12, 1), (12, 1))
    sda = make_block(False, 'iclr', 7, 8)
    assert sda.group_layout(64, 80) == ((7, 1), (7, 1))


def test_fully_padded_groups_stay_finite_in_half_precision():
    # Groups made only of padding get a finite mask value (-1e6, or the largest safe value of
    # the dtype), never -inf: no NaN even though their outputs are discarded.
    block = make_block(True, 'regional', group_size=3, interval=2)
    x = torch.randn(1, 7, 8, 32)  # padded to 12x12: many all-padding groups
    with torch.no_grad():
        out = block.double()._attention(x.double())
        assert torch.isfinite(out).all()
        for dtype in (torch.float16, torch.bfloat16):  # -1e6 overflows float16
            half = block.to(dtype)._attention(x.to(dtype))
            assert torch.isfinite(half).all(), dtype


@pytest.mark.parametrize('batch', [1, 2])
def test_padding_as_a_key_channel_in_compiled_graphs(batch, monkeypatch):
    """While compiling (CPU), a shared bias plus key padding goes to SDPA as the bias alone and
    one more q/k/v channel carrying the padding (layers.attention.padding_as_key_channel), not
    as a (groups, heads, N, N) mask; outputs and gradients equal the padding mask's wherever a
    group has a real key (all-padding groups hold only padding queries, which are cropped)."""
    from mmhybrid.models.layers import attention
    torch.manual_seed(0)
    q, k, v = (torch.randn(batch, 4, 2, 6, 8, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    bias = torch.randn(2, 6, 6, dtype=torch.float64, requires_grad=True)
    key_padding = torch.zeros(4, 6, dtype=torch.bool)
    key_padding[1, -2:] = True
    key_padding[2, ::2] = True
    key_padding[3] = True  # all padding

    def run():
        out = attention.grouped_attention(q, k, v, bias, key_padding, scale=0.3)[:, :3]
        return (out, ) + torch.autograd.grad((out * out).sum(), (q, k, v, bias))

    expected = run()
    masks = []
    original = attention.attention_kernel
    monkeypatch.setattr(attention, 'attention_kernel',
                        lambda q, k, v, mask, scale, fused: masks.append(mask) or original(
                            q, k, v, mask, scale, fused))
    monkeypatch.setattr(torch.compiler, 'is_compiling', lambda: True)
    got = run()
    assert [tuple(m.shape) for m in masks] == [(1, 2, 6, 6)]
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
    with torch.no_grad():  # and SDPA's
        torch.testing.assert_close(
            attention.grouped_attention(q, k, v, bias, key_padding, scale=0.3)[:, :3],
            expected[0])
    # The padding channel stays finite in half precision (-1e6 / scale overflows float16).
    padded = attention.padding_as_key_channel(*(t.detach().half() for t in (q, k, v)),
                                              key_padding, 0.3)
    assert all(t.shape[-1] == 9 for t in padded) and torch.isfinite(padded[1]).all()


@pytest.mark.parametrize('size', [(64, 96), (224, 224)], ids=['padded', 'unpadded'])
def test_attention_goes_through_sdpa(monkeypatch, size):
    """Every block with SDPA (the ICLR'22 LDA) calls it with its DPB bias as a mask whose last dimension has unit stride:
    CUDA's fused kernels refuse any other mask (found on an H200: the DPB's (heads, N, N) view
    of an (N, N, heads) table sent every unpadded CrossFormer attention to the math path)."""
    masks = []
    original = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        masks.append(kwargs.get('attn_mask'))
        return original(*args, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', spy)
    model = reduced_model().eval()
    with torch.no_grad():
        model(torch.randn(1, 3, *size))
    # The ICLR'22 LDA blocks (odd ones); the windows attend through the explicit formula.
    assert len(masks) == sum(REDUCED_T['depths']) // 2
    assert all(m is not None and m.dim() == 4 and m.stride(-1) == 1 for m in masks)


def test_merging_pads_odd_maps():
    merge = CrossScaleMerging(8, 16, (2, 4), stride=2).eval()
    x = torch.randn(1, 8, 57, 75)
    with torch.no_grad():
        out = merge(x)
        normed = F.pad(merge.norm(x), (0, 1, 0, 1))
        ref = torch.cat([conv(normed) for conv in merge.reductions], 1)
    assert out.shape[2:] == (29, 38)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


@pytest.mark.parametrize('kernel,stride,size', [
    (32, 4, (37, 50)), (16, 4, (5, 9)), (32, 4, (4, 4)), (8, 4, (64, 61)), (6, 2, (11, 13)),
    (4, 2, (7, 7)), (3, 3, (10, 8))])
def test_space_to_depth_conv_equals_the_conv(kernel, stride, size):
    # Every size class: crops (outputs need fewer rows than the padded map has), extra padding,
    # maps smaller than the kernel; the same products, so float64 agrees to rounding.
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, kernel, stride=stride, padding=(kernel - stride) // 2).double()
    x = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    assert_conv_rewrite_exact(space_to_depth_conv, conv, x)


def test_first_embedding_trains_its_wide_kernels_as_space_to_depth_convs(monkeypatch):
    # Swapped in for training, the 16x16 and 32x32 kernels take the space-to-depth path when
    # their weights get a gradient, nowhere else (inference and frozen weights keep the plain
    # conv); outputs and gradients equal the plain convs'.
    torch.manual_seed(0)
    plain = CrossScalePatchEmbed(3, 32, (4, 8, 16, 32), stride=4).double()
    embed = copy.deepcopy(plain)
    swapped = [conv.kernel_size[0] for conv in embed.projs if SpaceToDepthConv2d.fits(conv)]
    for conv in embed.projs:
        if SpaceToDepthConv2d.fits(conv):
            conv.__class__ = SpaceToDepthConv2d
    assert swapped == [16, 32]
    x = torch.randn(1, 3, 50, 70, dtype=torch.float64)
    calls = []
    real = accel_layers.space_to_depth_conv
    monkeypatch.setattr(accel_layers, 'space_to_depth_conv',
                        lambda conv, t: calls.append(conv.kernel_size[0]) or real(conv, t))
    got = embed(x)
    assert calls == [16, 32]
    grads = torch.autograd.grad(got.sum(), list(embed.parameters()))
    want = plain(x)
    wants = torch.autograd.grad(want.sum(), list(plain.parameters()))
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    for g, w in zip(grads, wants):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        embed(x)
    embed.requires_grad_(False)
    embed(x)
    assert calls == [16, 32]


def test_group_size_and_interval_per_stage():
    model = reduced_model(group_size=[14, 14, 7, 7], interval=[16, 8, 2, 1])
    assert [b.group_size for b in model.stages[0].blocks] == [14, 14]
    assert [b.interval for s in model.stages for b in s.blocks][::2] == [16, 8, 2, 1]
    assert [b.long_distance for b in model.stages[2].blocks] == [False, True]
    with torch.no_grad():
        outs = model.eval()(torch.randn(1, 3, 97, 131))
    assert [o.shape[1] for o in outs] == [16, 32, 64, 128]


def test_invalid_options():
    with pytest.raises(ValueError, match='lda_mode'):
        reduced_model(lda_mode='main')
    with pytest.raises(ValueError, match='group_size'):
        reduced_model(group_size=[7, 7, 7])
    with pytest.raises(ValueError, match='interval'):
        reduced_model(interval=0)
    with pytest.raises(ValueError, match='divisible'):
        CrossFormer(arch=dict(REDUCED_T, num_heads=[3, 4, 8, 16]))
    with pytest.raises(ValueError, match='split'):
        CrossFormer(arch=dict(REDUCED_T, embed_dims=[12, 32, 64, 128]))
    with pytest.raises(ValueError, match='merge_sizes'):
        CrossFormer(arch=dict(REDUCED_T, merge_sizes=(2, 3)))


# ---------------------------------------------------------------------------------- variants
def test_real_variant_param_counts():
    # Published totals of the classification models (CrossFormer README): backbone + final
    # norm + head.
    # CrossFormer++: the main branch's README.
    expected = {'tiny': 27.8e6, 'small': 30.7e6, 'base': 52.0e6, 'large': 92.0e6,
                'pp-small': 23.3e6, 'pp-base': 52.0e6, 'pp-large': 92.0e6, 'pp-huge': 96.0e6}
    for arch, total in expected.items():
        with torch.device('meta'):
            model = CrossFormer(arch=arch)
        params = sum(p.numel() for p in model.parameters())
        channels = model.stage_channels[-1]
        assert params + channels * 1000 + 1000 + 2 * channels == pytest.approx(total, abs=0.06e6)
    assert CrossFormer.parse_arch('s') == CrossFormer.parse_arch('small')


# ------------------------------------------------------------------------------ CrossFormer++
def test_crossformerpp_variants_and_defaults():
    # configs/crossformer_pp/*.yaml (main branch): ImageNet groups 4,4,14,7, intervals 4,2,1,1.
    for short, name in (('s', 'small'), ('b', 'base'), ('l', 'large'), ('h', 'huge')):
        assert CrossFormer.parse_arch(f'pp-{short}') == CrossFormer.parse_arch(f'pp-{name}')
        assert CrossFormer.parse_arch(f'crossformerpp-{short}')[0] == f'pp-{name}'
    with torch.device('meta'):
        pp = CrossFormer(arch='pp-huge')
        v1 = CrossFormer(arch='small')
        dense = CrossFormer(arch='pp-small', group_size=7, interval=(8, 4, 2, 1))
    assert (pp.group_size, pp.interval, pp.lda_mode) == ((4, 4, 14, 7), (4, 2, 1, 1), 'regional')
    assert (v1.group_size, v1.interval, v1.lda_mode) == ((7, ) * 4, (8, 4, 2, 1), 'iclr')
    assert (dense.group_size, dense.interval, dense.lda_mode) == ((7, ) * 4, (8, 4, 2, 1),
                                                                  'regional')
    # Every third block but a stage's last ends with an ACL: H's depths 6, 6, 18, 2.
    cooled = [[j for j, b in enumerate(stage.blocks) if b.cooling is not None]
              for stage in pp.stages]
    assert cooled == [[2], [2], [2, 5, 8, 11, 14], []]
    assert not any(b.cooling is not None for stage in v1.stages for b in stage.blocks)
    assert [has_cooling(i, 3) for i in range(3)] == [False, False, False]


def test_crossformerpp_cooling_replaces_the_block_output():
    """The ACL is LayerNorm(DWConv3x3(x)) with no residual: a block's output is normalised."""
    torch.manual_seed(0)
    block = CrossFormerBlock(dim=16, num_heads=2, group_size=4, interval=2,
                             long_distance=False, lda_mode='regional', mlp_ratio=4.,
                             qkv_bias=True, drop_path=0., act_cfg=dict(type='GELU'),
                             cooling=True).eval()
    x = 5 + 3 * torch.randn(2, 9, 11, 16)
    with torch.no_grad():
        out = block(x)
        block.cooling, cooling = None, block.cooling
        plain = block(x)
    conv = F.conv2d(plain.permute(0, 3, 1, 2), cooling.conv.weight, cooling.conv.bias,
                    padding=1, groups=16).permute(0, 2, 3, 1)
    torch.testing.assert_close(out, F.layer_norm(conv, (16, ), cooling.norm.weight,
                                                 cooling.norm.bias))


def test_crossformerpp_parity_needs_the_cooling_layers():
    # Guards the data: without its ACL the reduced model misses the reference by far.
    data = parity_case('crossformerpp_small_reduced')
    model = converted_model('crossformerpp_small_reduced')
    model.stages[2].blocks[2].cooling = None
    with torch.no_grad():
        outs = model(data['inputs'])
    assert (outs[2] - data['stages'][2]).abs().max() > 0.1


@pytest.mark.parametrize('checkpoint,arch,expected', [
    ('crossformerpp_small_reduced', dict(REDUCED_T, embed_dims=[32, 64, 128, 256],
                                         depths=[2, 3, 4, 2]),
     'a CrossFormer\\+\\+ checkpoint .* has no activation cooling layers: use arch=.pp-small'),
    ('crossformer_tiny_reduced', dict(REDUCED_T, acl=True, depths=[2, 2, 4, 2]),
     'a CrossFormer checkpoint .* has activation cooling layers: use arch=.tiny'),
])
def test_crossformer_and_crossformerpp_files_are_told_apart(checkpoint, arch, expected, tmp_path):
    path = tmp_path / 'released.pth'
    torch.save(official_checkpoint(checkpoint), path)
    model = CrossFormer(arch=arch, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointMismatchError, match=expected):
        model.init_weights()
    # The same refusal for a plain load of converted weights (load_from, resume).
    with pytest.raises(CheckpointMismatchError, match=expected):
        model.load_state_dict(converted_weights(checkpoint))


def test_crossformerpp_acl_must_be_a_bool():
    with pytest.raises(ValueError, match='acl'):
        CrossFormer(arch=dict(REDUCED_T, acl='yes'))
