"""UniFormer-light: token pruning, the class token, arch checks and what the dense layout adds on
top of the parity references. Parity with the official code and checkpoint conversion are in
test_parity.py and test_converters.py."""
import pytest
import torch

from archs import CONTRACT_MODELS, PARITY_MODELS
from helpers import assert_stages_close, converted_model, converted_weights, parity_case
from mmhybrid.models import UniFormerLight
from mmhybrid.models.backbones.uniformer_light import (UniFormerEvoBlock, evo_schedule,
                                                       kept_tokens, pool_scores)

NAME = 'uniformer_light_xxs_reduced'
TINY = CONTRACT_MODELS['UniFormerLight']['arch']


def no_pruning(arch: dict) -> dict:
    depths = arch['depths']
    return dict(arch, prune_ratios=[[], [], [1] * depths[2], [1] * depths[3]])


def test_parity_dense_out_norms():
    """forward() adds the dense code's per-output LayerNorms (eps 1e-6) on the raw stages that
    test_parity.py checks."""
    data = parity_case(NAME + '_det')
    model = converted_model(NAME)
    with torch.no_grad():
        raw = model.stage_outputs(data['inputs'])
        outs = model(data['inputs'])
    assert_stages_close(raw, data['stages'], data['meta']['tolerances']['float32_impl'])
    for out, stage, norm in zip(outs, raw, model.out_norms.values()):
        assert norm.eps == 1e-6
        torch.testing.assert_close(out, norm(stage))


def test_pruning_changes_the_output_and_matters_for_parity():
    # Every attention block at ratio 1 is plain global attention with a class token: the
    # references are not reproduced without the pruning.
    data = parity_case(NAME + '_det')
    model = UniFormerLight(arch=no_pruning(PARITY_MODELS[NAME][1])).eval()
    model.load_state_dict(converted_weights(NAME))
    with torch.no_grad():
        outs = model.stage_outputs(data['inputs'])
    torch.testing.assert_close(outs[1], data['stages'][1], atol=3e-5, rtol=1e-4)
    assert (outs[2] - data['stages'][2]).abs().max() > 1e-2
    assert (outs[3] - data['stages'][3]).abs().max() > 1e-2


def explicit_evo_block(block: UniFormerEvoBlock, x, cls_token, scores):
    """The block written out token by token: sort, keep, merge, attend, update, unsort."""
    x = x + block.pos_embed(x)
    b, c, h, w = x.shape
    tokens = x.flatten(2).transpose(1, 2)
    keep = int(h * w * block.prune_ratio)
    out_tokens, out_cls, out_scores = [], [], []
    for i in range(b):
        order = sorted(range(h * w), key=lambda j: -scores[i, j].item())
        kept, left = order[:keep], order[keep:]
        weights = scores[i, left] / scores[i, left].sum()
        rep = (weights[:, None] * tokens[i, left]).sum(0, keepdim=True)
        t = torch.cat([cls_token[i], tokens[i, kept], rep])[None]
        normed = block.norm1(t)
        q, k, v = block.attn.qkv(normed).reshape(1, -1, 3, block.attn.num_heads,
                                                 c // block.attn.num_heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * q.shape[-1]**-0.5).softmax(-1)
        a = block.attn.proj((attn @ v).transpose(1, 2).reshape(1, -1, c))
        t = t + a
        m = block.mlp(block.norm2(t))
        t = t + m
        new = tokens[i].clone()
        new[kept] = t[0, 1:-1]
        new[left] = tokens[i, left] + a[0, -1] + m[0, -1]
        row = attn[0, :, 0, 1:-1].mean(0)
        s = scores[i].clone()
        s[kept] = (1 - block.trade_off) * scores[i, kept] + block.trade_off * row
        out_tokens.append(new)
        out_cls.append(t[0, :1])
        out_scores.append(s)
    x = torch.stack(out_tokens).transpose(1, 2).reshape(b, c, h, w)
    return x, torch.stack(out_cls), torch.stack(out_scores)


@pytest.mark.parametrize('size', [(4, 6), (3, 5)])
def test_evo_block_equals_the_explicit_computation(size):
    torch.manual_seed(0)
    block = UniFormerEvoBlock(16, 2, 3., True, 0., 0.5, 0.25, dict(type='GELU')).eval().double()
    x = torch.randn(2, 16, *size, dtype=torch.float64)
    cls_token = torch.randn(2, 1, 16, dtype=torch.float64)
    scores = torch.rand(2, size[0] * size[1], dtype=torch.float64)
    with torch.no_grad():
        got = block(x, cls_token, scores)
        ref = explicit_evo_block(block, x, cls_token, scores)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


def test_score_pooling_keeps_the_sum_and_floors():
    scores = torch.rand(2, 5 * 7, dtype=torch.float64)
    pooled = pool_scores(scores, 5, 7)
    assert pooled.shape == (2, 2 * 3)
    torch.testing.assert_close(pooled.sum(1), scores.sum(1))
    grid = scores.reshape(2, 5, 7)[:, :4, :6].reshape(2, 2, 2, 3, 2).mean((2, 4)).flatten(1)
    torch.testing.assert_close(pooled / pooled.sum(1, keepdim=True),
                               grid / grid.sum(1, keepdim=True))


def test_out_indices_before_stage_four_skip_it():
    model = UniFormerLight(arch=TINY, out_indices=(0, 1, 2)).eval()
    full = UniFormerLight(arch=TINY).eval()
    full.load_state_dict(model.state_dict(), strict=False)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(model(x), full(x)[:3]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_arch_table_and_schedules():
    assert evo_schedule([2, 5, 8, 2]) == [[], [], [1., .5, .5, .5, .5, .5, .5, .5], [.5, .5]]
    for name, dims, depths, heads in (('xxs', [56, 112, 224, 448], [2, 5, 8, 2], (8, 16)),
                                      ('xs', [64, 128, 256, 512], [3, 5, 9, 3], (8, 16))):
        with torch.device('meta'):
            model = UniFormerLight(arch=name)
        assert model.stage_channels == tuple(dims)
        assert [len(s.blocks) for s in model.stages] == depths
        assert (model.stages[2].blocks[0].attn.num_heads,
                model.stages[3].blocks[0].attn.num_heads) == heads
        ratios = [b.prune_ratio for s in model.stages[2:] for b in s.blocks]
        assert ratios == [1.] + [.5] * (depths[2] + depths[3] - 1)
        assert all(b.mlp.fc1.out_features == 3 * b.mlp.fc1.in_features
                   for s in model.stages[2:] for b in s.blocks)


@pytest.mark.parametrize('name,published', [('xxs', 10.2), ('xs', 16.5)])
def test_real_variant_param_counts(name, published):
    # The ImageNet model adds BatchNorm + head on the pooled map and LayerNorm + head on the
    # class token (README: 10.2M / 16.5M).
    with torch.device('meta'):
        model = UniFormerLight(arch=name, out_norm_cfg=None)
    dim = model.stage_channels[-1]
    total = sum(p.numel() for p in model.parameters()) + 2 * (2 * dim + dim * 1000 + 1000)
    assert round(total / 1e6, 1) == published


@pytest.mark.parametrize('arch,match', [
    (dict(TINY, prune_ratios=[[], [], [0.5, 0.5, 0.5], [0.5, 0.5]]), 'start stage 3 with 1'),
    (dict(TINY, prune_ratios=[[], [], [1, 0.5], [0.5, 0.5]]), 'one value per attention block'),
    (dict(TINY, prune_ratios=[[], [1], [1, 0.5, 0.5], [0.5, 0.5]]), 'one value per'),
    (dict(TINY, prune_ratios=[[], [], [1, 0, 0.5], [0.5, 0.5]]), r'in \(0, 1\]'),
    (dict(TINY, trade_offs=[[], [], [1, 1.5, 0.5], [0.5, 0.5]]), r'in \[0, 1\]'),
    (dict(TINY, head_dim=5), 'not multiples of head_dim'),
])
def test_invalid_arch(arch, match):
    with pytest.raises(ValueError, match=match):
        UniFormerLight(arch=arch)


def official_layout(state_dict: dict) -> dict:
    """mmhybrid keys back to the official ones (``patch_embed{i}``, ``blocks{i}``, ...)."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith('out_norms.'):
            continue
        _, stage, part, *rest = key.split('.', 3)
        rest = rest[0] if rest else ''
        if part == 'downsample':
            out[f'patch_embed{int(stage) + 1}.{rest}'] = value
        elif part == 'blocks':
            out[f'blocks{int(stage) + 1}.{rest}'] = value
        else:  # cls_token, cls_upsample
            out[f'{part}.{rest}' if rest else part] = value
    return out


@pytest.mark.parametrize('name', ['xxs', 'xs'])
def test_offline_conversion_finds_the_released_arch(name, tmp_path):
    from mmhybrid.checkpoint.core import convert_checkpoint_file
    model = UniFormerLight(arch=name)
    dim = model.stage_channels[-1]
    official = official_layout(model.state_dict())
    assert 'cls_token' in official and 'cls_upsample.weight' in official
    for head in ('head', 'head_cls'):
        official[f'{head}.weight'], official[f'{head}.bias'] = torch.zeros(1000, dim), \
            torch.zeros(1000)
    official['norm_cls.weight'], official['norm_cls.bias'] = torch.ones(dim), torch.zeros(dim)
    src = tmp_path / f'uniformer_{name}_224_in1k.pth'
    torch.save({'model': official, 'epoch': 599}, src)
    result = convert_checkpoint_file(str(src), str(tmp_path / 'out.pth'))
    assert (result.family, result.arch) == ('uniformer_light', name)
    assert result.report.ok and len(result.report.dropped) == 6
    converted = torch.load(tmp_path / 'out.pth', weights_only=True)
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith('out_norms.')}
    assert sorted(converted) == sorted(expected)
    assert all(torch.equal(converted[k], v) for k, v in expected.items())


@pytest.mark.parametrize('ratio', [0.5, 0.25, 0.75, 0.125, 0.7, 0.3, 1 / 3, 0.9])
def test_kept_tokens_is_the_official_float_truncation(ratio):
    # Integer arithmetic for ratios of a few binary digits (a traced size stays an integer
    # expression), the float product otherwise: int(n * ratio) either way.
    sizes = list(range(2000)) + [2**31 - 1, 2**30 + 7, 123456789, 16 * 84, 25 * 42]
    assert [kept_tokens(n, ratio) for n in sizes] == [int(n * ratio) for n in sizes]
