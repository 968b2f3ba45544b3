"""CMT: the resized position bias, variants, and the official key layout. Parity and checkpoint
conversion are in test_parity.py and test_converters.py."""
import argparse
import copy
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

from archs import PARITY_MODELS
from helpers import converted_model, official_state_dict
from mmhybrid.checkpoint import get_converter
from mmhybrid.checkpoint.core import convert_checkpoint_file
from mmhybrid.models import CMT
from mmhybrid.models.backbones import cmt as cmt_module
from mmhybrid.models.backbones.cmt import key_grid
import mmhybrid
from mmhybrid.accel import cmt as accel_cmt
from mmhybrid.accel.cmt import RowBandBias
from mmhybrid.accel.ops import act_, affine_, conv_gelu, linear_act
from mmhybrid.models.layers import ChannelAffine, resize_position_bias
from mmhybrid.models.layers import folding

# The parity README's reduced CMT-Ti (classifier fc_dim 256 / 100 classes is dropped).
REDUCED_TI = PARITY_MODELS['cmt_tiny_reduced'][1]
TINY = dict(embed_dims=[8, 16, 32, 64], depths=[1, 1, 2, 1], mlp_ratios=[2] * 4,
            stem_channels=8, img_size=64)


@pytest.fixture(scope='module')
def loaded():
    return converted_model('cmt_tiny_reduced')


# ---------------------------------------------------------------------------------- converter
def test_other_pretrain_size_is_resized_on_load(loaded, tmp_path):
    # A 224 checkpoint into a model pretrained at 64: the biases are resized exactly as the
    # 224 model resizes them at run time for a 64x64 input, so the outputs agree.
    official_sd = official_state_dict('cmt_tiny_reduced')
    path = tmp_path / 'cmt_224.pth'
    torch.save({'model': official_sd}, path)
    model = CMT(arch=dict(REDUCED_TI, img_size=64),
                init_cfg=dict(type='Pretrained', checkpoint=str(path))).eval()
    model.init_weights()
    assert model.stages[0].relative_pos.shape == (1, 256, 4)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    sd, _ = get_converter('cmt').convert(official_sd)
    assert model.adapt_state_dict(dict(sd)) == [f'stages.{i}.relative_pos' for i in range(4)]
    resized = dict(sd)
    model.adapt_state_dict(resized)
    assert model.adapt_state_dict(resized) == []  # already at the model's size
    # The backbone's own load hook adapts: a plain load_state_dict of the 224-trained weights.
    plain = CMT(arch=dict(REDUCED_TI, img_size=64)).eval()
    plain.load_state_dict(sd)
    with torch.no_grad():
        for a, b in zip(plain(x), model(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


# ---------------------------------------------------------------------------------- bias
def test_resize_is_identity_at_native_size():
    bias = torch.randn(2, 16, 4)
    assert resize_position_bias(bias, (4, 4), (2, 2), (4, 4), (2, 2)) is bias


def test_resize_interpolates_key_and_query_planes_separately():
    torch.manual_seed(0)
    bias = torch.randn(2, 4 * 5, 3 * 2, dtype=torch.float64)
    out = resize_position_bias(bias, (4, 5), (3, 2), (7, 9), (5, 4))
    assert out.shape == (2, 63, 20)
    # Query plane first, then key plane: the same separable operator.
    field = bias.reshape(2, 4, 5, 3, 2)
    q = F.interpolate(field.permute(0, 3, 4, 1, 2).reshape(1, 12, 4, 5), size=(7, 9),
                      mode='bicubic', align_corners=False).reshape(2, 3, 2, 7, 9)
    k = F.interpolate(q.permute(0, 3, 4, 1, 2).reshape(1, 126, 3, 2), size=(5, 4),
                      mode='bicubic', align_corners=False)
    torch.testing.assert_close(out, k.reshape(2, 63, 20))
    # A bias that depends only on the key position keeps depending only on it.
    per_key = torch.randn(1, 1, 6, dtype=torch.float64).expand(1, 20, 6)
    out = resize_position_bias(per_key, (4, 5), (3, 2), (7, 9), (5, 4))
    torch.testing.assert_close(out, out[:, :1].expand_as(out))


def test_key_grid():
    assert key_grid(56, 84, 8) == (7, 10)
    assert key_grid(25, 33, 4) == (6, 8)
    assert key_grid(3, 20, 8) == (1, 2)  # a side shorter than sr still has one key
    assert key_grid(5, 7, 1) == (5, 7)


def _record_bias(model):
    seen = []
    handles = [blk.attn.register_forward_pre_hook(lambda m, args: seen.append(args[1]))
               for stage in model.stages for blk in stage.blocks]
    return seen, handles


def test_bias_shapes_and_sharing_at_non_square_size(monkeypatch):
    model = CMT(arch=dict(TINY, depths=[2, 2, 2, 2]))
    calls = []
    original = cmt_module.resize_position_bias
    monkeypatch.setattr(cmt_module, 'resize_position_bias',
                        lambda *a: calls.append(a[3:]) or original(*a))
    seen, _ = _record_bias(model)
    model.train()
    model(torch.randn(1, 3, 224, 320))
    # Once per stage and forward, the same tensor for both blocks of a stage.
    assert calls == [((56, 80), (7, 10)), ((28, 40), (7, 10)), ((14, 20), (7, 10)),
                     ((7, 10), (7, 10))]
    assert [tuple(b.shape) for b in seen[::2]] == [(1, 4480, 70), (2, 1120, 70),
                                                   (4, 280, 70), (8, 70, 70)]
    assert all(seen[2 * i] is seen[2 * i + 1] for i in range(4))


def test_gradient_reaches_stored_bias():
    model = CMT(arch=TINY).train()
    model(torch.randn(1, 3, 96, 64))[0].sum().backward()
    for stage in model.stages[:1]:
        assert stage.relative_pos.grad is not None
        assert stage.relative_pos.grad.abs().sum() > 0


def test_resized_bias_is_not_kept_between_forwards(monkeypatch):
    # Kept across forwards, the four resized biases would take 530 MB at 800x1344 (more than
    # the rest of the inference peak): they are recomputed per forward and freed per stage.
    model = CMT(arch=TINY).eval()
    calls = []
    original = cmt_module.resize_position_bias
    monkeypatch.setattr(cmt_module, 'resize_position_bias',
                        lambda *a: calls.append(1) or original(*a))
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        first = model(x)
        assert len(calls) == 4
        second = model(x)
        assert len(calls) == 8
        for a, b in zip(first, second):
            assert torch.equal(a, b)
        # New weights take effect at once.
        sd = model.state_dict()
        sd['stages.0.relative_pos'] = sd['stages.0.relative_pos'] + 1
        model.load_state_dict(sd)
        third = model(x)
        assert not torch.equal(first[0], third[0])
    assert not any(isinstance(v, torch.Tensor) and v.dim() == 3
                   for stage in model.stages for v in vars(stage).values())


@pytest.mark.parametrize('size', [(8, 8), (16, 48), (33, 17), (1, 1)])
def test_tiny_inputs_run(size):
    # Stage maps smaller than the reduction ratio (even 1x1) still give one key.
    model = CMT(arch=dict(TINY, img_size=224)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    assert all(torch.isfinite(o).all() and o.shape[2] >= 1 and o.shape[3] >= 1 for o in outs)


# ---------------------------------------------------------------------------------- variants
def test_variants_and_aliases():
    expected = {  # params of the authors' classification models (fc 1280, 1000 classes)
        'tiny': (9.49e6, 160), 'xsmall': (15.25e6, 192), 'small': (26.26e6, 224),
        'base': (45.72e6, 256)}
    for arch, (total, img_size) in expected.items():
        with torch.device('meta'):
            model = CMT(arch=arch)
        assert model.img_size == img_size
        params = sum(p.numel() for p in model.parameters())
        fc = 1280
        head = model.stage_channels[-1] * fc + fc + 2 * fc + fc * 1000 + 1000
        assert params + head == pytest.approx(total, rel=1e-3), arch
        # 7x7 keys at 224: (img/32)^2 keys in every stage.
        assert model.stages[0].relative_pos.shape[2] == (img_size // 32)**2
    for alias, name in (('ti', 'tiny'), ('xs', 'xsmall'), ('s', 'small'), ('b', 'base')):
        with torch.device('meta'):
            assert CMT(arch=alias).arch_name == name


def test_invalid_custom_arch():
    with pytest.raises(ValueError, match='img_size'):
        CMT(arch=dict(TINY, img_size=100))
    with pytest.raises(ValueError, match='num_heads'):
        CMT(arch=dict(TINY, embed_dims=[8, 15, 32, 64]))
    with pytest.raises(ValueError, match='sr_ratios'):
        CMT(arch=dict(TINY, sr_ratios=[8, 4, 0, 1]))


# ---------------------------------------------------------------------------------- offline
def to_official(sd):
    """mmhybrid layout → the official key names (the inverse of the converter's renames)."""
    out = OrderedDict()
    inner = (('lpu.', 'proj.'), ('attn.sr_norm.', 'attn.sr.1.'), ('attn.sr.', 'attn.sr.0.'),
             ('ffn.fc1.', 'mlp.conv1.0.'), ('ffn.norm1.', 'mlp.conv1.2.'),
             ('ffn.dwconv.', 'mlp.proj.'), ('ffn.norm2.', 'mlp.proj_bn.'),
             ('ffn.fc2.', 'mlp.conv2.0.'), ('ffn.norm3.', 'mlp.conv2.1.'))
    for key, value in sd.items():
        parts = key.split('.')
        if parts[0] == 'stem':
            new = f'stem_{parts[1]}.' + '.'.join(parts[2:])
        elif parts[2] == 'relative_pos':
            new = f'relative_pos_{"abcd"[int(parts[1])]}'
        elif parts[2] == 'downsample':
            new = f'patch_embed_{"abcd"[int(parts[1])]}.' + '.'.join(parts[3:])
        else:
            rest = '.'.join(parts[4:])
            for old, official in inner:
                if rest.startswith(old):
                    rest = official + rest[len(old):]
                    break
            new = f'blocks_{"abcd"[int(parts[1])]}.{parts[3]}.{rest}'
        out[new] = value
    return out


def test_official_layout_round_trip_and_offline_conversion(tmp_path):
    torch.manual_seed(0)
    model = CMT(arch='tiny')
    official = to_official(model.state_dict())
    official['head.weight'] = torch.zeros(1000, 1280)
    src, dst = tmp_path / 'cmt_tiny.pth', tmp_path / 'cmt_tiny_mmhybrid.pth'
    torch.save({'model': official, 'args': argparse.Namespace(model='cmt_ti')}, src)
    result = convert_checkpoint_file(str(src), str(dst))
    assert result.family == 'cmt' and result.arch == 'tiny'
    assert result.report.ok and result.report.dropped == ['head.weight']
    converted = torch.load(dst, weights_only=True)
    assert list(converted) == list(model.state_dict())
    assert all(torch.equal(converted[k], v) for k, v in model.state_dict().items())


# ------------------------------------------------------------------------ inference rewrites
def _randomised_norms(model):
    # Non-trivial BatchNorm statistics and affines (the defaults would make folds trivial).
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            with torch.no_grad():
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return model


def _plain_and_optimized(model, x):
    optimized = mmhybrid.optimize_for_inference(copy.deepcopy(model))
    with torch.no_grad():
        return model(x), optimized(x)


@pytest.mark.parametrize('channels_last', [True, False])
@pytest.mark.parametrize('size', [(64, 96), (45, 71), (8, 8)])
def test_optimized_inference_equals_modules(size, channels_last):
    torch.manual_seed(0)
    model = _randomised_norms(CMT(arch=TINY, channels_last=channels_last)).eval()
    plain, optimized = _plain_and_optimized(model, torch.randn(2, 3, *size))
    torch.testing.assert_close(optimized, plain, rtol=1e-5, atol=1e-5)


def test_fold_and_fused_ops_equal_the_modules():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 4, 1)
    pre = _randomised_norms(torch.nn.BatchNorm2d(6)).eval()
    post = _randomised_norms(torch.nn.BatchNorm2d(4)).eval()
    x = torch.randn(2, 6, 5, 7)
    with torch.no_grad():
        expected = post(conv(pre(x)))
        weight, bias = folding.fold_bn_around(conv.weight.flatten(1), conv.bias,
                                              folding.bn_affine(pre), folding.bn_affine(post))
        for layout in (torch.contiguous_format, torch.channels_last):
            rows = x.contiguous(memory_format=layout).permute(0, 2, 3, 1)
            for onednn in (False, True):
                out = linear_act(rows, weight, bias, None, onednn).permute(0, 3, 1, 2)
                torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        dw = torch.nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=6)
        weight, bias = folding.fold_bn_after(dw.weight, dw.bias, folding.bn_affine(pre))
        torch.testing.assert_close(F.conv2d(x, weight, bias, 2, 1, 1, 6), pre(dw(x)))
        dw = torch.nn.Conv2d(6, 6, 3, padding=1, groups=6)
        tapped = copy.deepcopy(dw)
        folding.fold_identity_tap_(tapped)
        gelu = torch.nn.GELU()
        for layout in (torch.contiguous_format, torch.channels_last):
            x = x.contiguous(memory_format=layout)
            out = conv_gelu(tapped, gelu, x)
            torch.testing.assert_close(out, gelu(x + dw(x)), rtol=1e-5, atol=1e-5)
        assert folding.bn_affine(pre.train()) is None


def test_in_place_act_and_norm_equal_the_modules():
    torch.manual_seed(0)
    norm = _randomised_norms(torch.nn.BatchNorm2d(6)).eval()
    affine = ChannelAffine.from_batch_norm(norm)
    for layout in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(2, 6, 5, 7).contiguous(memory_format=layout)
        for act in (torch.nn.GELU(), torch.nn.GELU(approximate='tanh')):
            with torch.no_grad():
                expected = norm(act(x))
                y = x.clone()
                out = affine_(affine, act_(act, y))
            assert out.data_ptr() == y.data_ptr()  # overwritten, not a new map
            assert out.is_contiguous(memory_format=layout)
            torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    # Anything else leaves the input alone and calls the module: other activations and norms,
    # a dtype other than the affine map's.
    x = torch.randn(2, 6, 5, 7)
    y = x.clone()
    assert torch.equal(act_(torch.nn.ReLU(), y), x.relu()) and torch.equal(y, x)
    with torch.no_grad():
        assert torch.equal(affine_(norm, y), norm(x)) and torch.equal(y, x)
        low = x.bfloat16()
        out = affine_(affine, low)  # bf16 map, fp32 affine map: the module
        assert torch.equal(out, affine(low)) and torch.equal(low, x.bfloat16())


@pytest.mark.parametrize('src,dst', [((8, 8), (25, 19)), ((8, 8), (8, 13)), ((7, 7), (3, 2)),
                                     ((4, 4), (1, 9))])
def test_row_band_bias_equals_whole_resize(src, dst):
    torch.manual_seed(0)
    src_key, dst_key = key_grid(*src, 2), key_grid(*dst, 2)
    bias = torch.randn(3, src[0] * src[1], src_key[0] * src_key[1])
    whole = resize_position_bias(bias, src, src_key, dst, dst_key)
    banded = RowBandBias(bias, src, src_key, dst, dst_key, torch.float32)
    for rows in (1, 2, 5, dst[0]):
        bands = [banded.rows(top, min(top + rows, dst[0])) for top in range(0, dst[0], rows)]
        torch.testing.assert_close(torch.cat(bands, 1), whole, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('size', [(100, 76), (37, 53), (150, 33)])
def test_attention_in_query_bands_equals_whole(size, monkeypatch):
    torch.manual_seed(0)
    model = _randomised_norms(CMT(arch=TINY)).eval()
    optimized = mmhybrid.optimize_for_inference(copy.deepcopy(model))
    x = torch.randn(2, 3, *size)
    calls = []
    original = RowBandBias.rows
    monkeypatch.setattr(RowBandBias, 'rows',
                        lambda self, *a: calls.append(a) or original(self, *a))
    with torch.no_grad():
        whole = model(x)
        torch.testing.assert_close(optimized(x), whole, rtol=1e-5, atol=1e-5)
        assert not calls  # small biases stay whole
        monkeypatch.setattr(accel_cmt, 'BIAS_WHOLE_BYTES', 0)
        for band_bytes in (1, 20000):
            monkeypatch.setattr(accel_cmt, 'BIAS_BAND_BYTES', band_bytes)
            torch.testing.assert_close(optimized(x), whole, rtol=1e-5, atol=1e-5)
    assert any(bottom - top == 1 for top, bottom in calls)
    assert any(bottom - top > 1 for top, bottom in calls)
