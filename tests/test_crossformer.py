"""CrossFormer: parity with both official codes, padding/masking, LDA modes, checkpoints."""
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_stages_close, parity_file
from mmhybrid.checkpoint import (CheckpointMismatchError, convert_state_dict, detect_family,
                                 load_converted, unwrap_state_dict)
from mmhybrid.checkpoint.crossformer import convert_crossformer, is_crossformer
from mmhybrid.models import VAN, CrossFormer
from mmhybrid.models.backbones.crossformer import CrossFormerBlock, CrossScaleMerging

# crossformer_tiny_reduced*.pth: CrossFormer-T layout with dims 16..128 and depths 2,2,2,2.
REDUCED_T = dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 2, 2], num_heads=[2, 4, 8, 16])


def reduced_model(**kwargs) -> CrossFormer:
    return CrossFormer(arch=REDUCED_T, **kwargs)


@pytest.fixture(scope='module')
def parity():
    return parity_file('crossformer_tiny_reduced.pth')


@pytest.fixture(scope='module')
def parity_det():
    return parity_file('crossformer_tiny_reduced_det.pth')


@pytest.fixture(scope='module')
def converted(parity):
    sd, report = convert_state_dict(unwrap_state_dict(parity['checkpoint']))
    return sd, report


def loaded_model(converted, **kwargs) -> CrossFormer:
    sd, report = converted
    model = reduced_model(**kwargs)
    load_converted(model, sd, report)
    assert report.ok
    return model.eval()


# ---------------------------------------------------------------------------------- parity
@pytest.mark.parametrize('lda_mode', ['iclr', 'regional'])
def test_parity_224(parity, converted, lda_mode):
    # At 224 both LDA semantics coincide with the classification code.
    model = loaded_model(converted, lda_mode=lda_mode)
    with torch.no_grad():
        outs = model.stage_outputs(parity['inputs'])
    assert_stages_close(outs, parity['stages'], parity['meta']['tolerances']['float32_impl'])


@pytest.mark.parametrize('lda_mode,key', [('regional', 'stages'), ('iclr', 'stages_iclr')])
def test_parity_det_256x320(parity_det, converted, lda_mode, key):
    model = loaded_model(converted, lda_mode=lda_mode)
    with torch.no_grad():
        outs = model(parity_det['inputs'])
    assert_stages_close(outs, parity_det[key], parity_det['meta']['tolerances']['float32_impl'])


@pytest.mark.parametrize('lda_mode,key', [('regional', 'stages'), ('iclr', 'stages_iclr')])
def test_parity_det_float64(parity_det, converted, lda_mode, key):
    model = loaded_model(converted, lda_mode=lda_mode).double()
    with torch.no_grad():
        outs = model(parity_det['inputs'].double())
    assert_stages_close([o.float() for o in outs], parity_det[key],
                        parity_det['meta']['tolerances']['float64_impl'])


def test_the_two_lda_modes_differ_at_detection_size(parity_det):
    # Guards the data: the reference tensors of the two codes really differ.
    diff = (parity_det['stages'][0] - parity_det['stages_iclr'][0]).abs().max()
    assert diff > 0.1


@pytest.mark.parametrize('lda_mode', ['iclr', 'regional'])
def test_raw_230x302_image_runs(parity_det, converted, lda_mode):
    # The official dense codes assert even sizes before merging; mmhybrid pads instead.
    model = loaded_model(converted, lda_mode=lda_mode)
    raw = parity_det['inputs'][..., :230, :302]
    with torch.no_grad():
        outs = model(raw)
    assert [tuple(o.shape[2:]) for o in outs] == [(57, 75), (29, 38), (15, 19), (8, 10)]
    assert all(torch.isfinite(o).all() for o in outs)


def test_no_state_change_after_small_inputs(parity_det, converted):
    # The official code switches blocks to SDA for good after a small map; mmhybrid decides
    # per input, so a small input leaves later results untouched.
    model = loaded_model(converted, lda_mode='iclr')
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = [(b.group_size, b.interval, b.long_distance) for s in model.stages for b in s.blocks]
    with torch.no_grad():
        model(torch.randn(1, 3, 40, 60))
        model(torch.randn(1, 3, 64, 64))
        outs = model(parity_det['inputs'])
    assert_stages_close(outs, parity_det['stages_iclr'],
                        parity_det['meta']['tolerances']['float32_impl'])
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


def test_group_layouts():
    iclr, regional = make_block(True, 'iclr', 7, 8), make_block(True, 'regional', 7, 8)
    assert iclr.group_layout(64, 80) == ((8, 8), (10, 8))  # 8x8 groups of 8x10 tokens
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


def test_attention_goes_through_sdpa(monkeypatch):
    calls = []
    original = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(kwargs.get('attn_mask') is not None)
        return original(*args, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', spy)
    model = reduced_model().eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 96))
    assert len(calls) == sum(REDUCED_T['depths']) and all(calls)


def test_merging_pads_odd_maps():
    merge = CrossScaleMerging(8, 16, (2, 4), stride=2).eval()
    x = torch.randn(1, 8, 57, 75)
    with torch.no_grad():
        out = merge(x)
        normed = F.pad(merge.norm(x), (0, 1, 0, 1))
        ref = torch.cat([conv(normed) for conv in merge.reductions], 1)
    assert out.shape[2:] == (29, 38)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


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


# ------------------------------------------------------------------------------ checkpoints
def test_converter_drops_head_norm_and_geometry_buffers(parity, converted):
    official = unwrap_state_dict(parity['checkpoint'])
    sd, report = converted
    dropped = set(report.dropped)
    assert {'head.weight', 'head.bias', 'norm.weight', 'norm.bias'} <= dropped
    assert all(k.endswith(('.attn.biases', '.attn.relative_position_index'))
               for k in dropped - {'head.weight', 'head.bias', 'norm.weight', 'norm.bias'})
    assert len(dropped) == 4 + 2 * sum(REDUCED_T['depths'])
    assert len(sd) + len(dropped) == len(official)
    assert report.ok and not report.unmatched
    assert 'stages.1.downsample.reductions.1.weight' in sd  # layers.0.downsample
    assert 'stages.0.downsample.projs.3.weight' in sd  # patch_embed
    assert 'stages.3.blocks.1.attn.pos.pos3.2.bias' in sd


def test_converter_is_idempotent(converted):
    once, _ = converted
    twice, report = convert_crossformer(once)
    assert list(once) == list(twice)
    assert all(once[k] is twice[k] for k in once)
    assert report.renamed == 0 and not report.dropped and not report.unmatched


def test_detection(parity, converted):
    official = unwrap_state_dict(parity['checkpoint'])
    assert is_crossformer(official) and is_crossformer(converted[0])
    assert detect_family(official) == 'crossformer'
    van = VAN(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1],
                        mlp_ratios=[2, 2, 2, 2])).state_dict()
    assert not is_crossformer(van)


def test_init_cfg_loads_official_file(parity, tmp_path):
    path = tmp_path / 'crossformer-t.pth'
    torch.save(parity['checkpoint'], path)
    model = reduced_model(init_cfg=dict(type='Pretrained', checkpoint=str(path))).eval()
    model.init_weights()
    with torch.no_grad():
        outs = model(parity['inputs'])
    assert_stages_close(outs, parity['stages'], parity['meta']['tolerances']['float32_impl'])


def test_init_cfg_loads_official_detector_file(parity, parity_det, tmp_path):
    # An official mmdet checkpoint: the same keys under `backbone.`, with neck/head keys.
    sd = unwrap_state_dict(parity['checkpoint'])
    det = {f'backbone.{k}': v for k, v in sd.items() if not k.startswith(('head.', 'norm.'))}
    det['neck.lateral_convs.0.conv.weight'] = torch.zeros(4, 16, 1, 1)
    path = tmp_path / 'mask_rcnn_crossformer.pth'
    torch.save({'state_dict': det, 'meta': {}}, path)
    model = reduced_model(init_cfg=dict(type='Pretrained', checkpoint=str(path))).eval()
    model.init_weights()
    with torch.no_grad():
        outs = model(parity_det['inputs'])
    assert_stages_close(outs, parity_det['stages_iclr'],
                        parity_det['meta']['tolerances']['float32_impl'])


def test_wrong_arch_is_an_error(parity, tmp_path):
    path = tmp_path / 'crossformer-reduced.pth'
    torch.save(parity['checkpoint'], path)
    with torch.device('meta'):
        model = CrossFormer(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointMismatchError, match=r"arch='tiny'.*shape mismatches"):
        model.init_weights()


def test_wrong_family_is_an_error(tmp_path):
    van = VAN(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2]))
    path = tmp_path / 'van_b0.pth.tar'
    torch.save({'state_dict': van.state_dict()}, path)
    model = reduced_model(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointMismatchError, match="'van'"):
        model.init_weights()


def test_real_variant_param_counts():
    # Published totals of the classification models (CrossFormer README): backbone + final
    # norm + head.
    expected = {'tiny': 27.8e6, 'small': 30.7e6, 'base': 52.0e6, 'large': 92.0e6}
    for arch, total in expected.items():
        with torch.device('meta'):
            model = CrossFormer(arch=arch)
        params = sum(p.numel() for p in model.parameters())
        channels = model.stage_channels[-1]
        assert params + channels * 1000 + 1000 + 2 * channels == pytest.approx(total, abs=0.06e6)
    assert CrossFormer.parse_arch('s') == CrossFormer.parse_arch('small')
