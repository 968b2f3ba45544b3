"""CMT: parity with the official code, conversion, and the resized position bias."""
import argparse
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_stages_close, parity_file
from mmhybrid.checkpoint import (CheckpointMismatchError, convert_state_dict, detect_family,
                                 load_converted, unwrap_state_dict)
from mmhybrid.checkpoint.cmt import convert_cmt, is_cmt
from mmhybrid.models import CMT
from mmhybrid.models.backbones import cmt as cmt_module
from mmhybrid.models.backbones.cmt import key_grid
from mmhybrid.models.layers import resize_position_bias

# The parity README's reduced CMT-Ti (classifier fc_dim 256 / 100 classes is dropped).
REDUCED_TI = dict(embed_dims=[18, 36, 72, 144], depths=[1, 1, 2, 1], mlp_ratios=[3.6] * 4,
                  stem_channels=16, img_size=224)
TINY = dict(embed_dims=[8, 16, 32, 64], depths=[1, 1, 2, 1], mlp_ratios=[2] * 4,
            stem_channels=8, img_size=64)


def reduced_model(**kwargs) -> CMT:
    return CMT(arch=REDUCED_TI, **kwargs)


@pytest.fixture(scope='module')
def parity():
    return parity_file('cmt_tiny_reduced.pth')


@pytest.fixture(scope='module')
def official_sd(parity):
    return unwrap_state_dict(parity['checkpoint'])


@pytest.fixture(scope='module')
def loaded(official_sd):
    model = reduced_model()
    sd, report = convert_state_dict(official_sd)
    load_converted(model, sd, report)
    assert report.ok and not report.resized
    return model.eval()


# ---------------------------------------------------------------------------------- parity
def test_parity_224(parity, loaded):
    with torch.no_grad():
        outs = loaded(parity['inputs'])
    assert_stages_close(outs, parity['stages'], parity['meta']['tolerances']['float32_impl'])


def test_parity_float64(parity, loaded):
    model = reduced_model().eval()
    model.load_state_dict(loaded.state_dict())
    model.double()
    with torch.no_grad():
        outs = model(parity['inputs'].double())
    assert_stages_close([o.float() for o in outs], parity['stages'],
                        parity['meta']['tolerances']['float64_impl'])


def test_init_cfg_loads_official_file_with_namespace(parity, official_sd, tmp_path):
    # train.py pickles an argparse Namespace next to the weights: no code may run on load.
    path = tmp_path / 'cmt_tiny.pth'
    torch.save({'model': official_sd, 'epoch': 299,
                'args': argparse.Namespace(model='cmt_ti', input_size=160, lr=8e-4)}, path)
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)
    model = reduced_model(init_cfg=dict(type='Pretrained', checkpoint=str(path))).eval()
    model.init_weights()
    with torch.no_grad():
        outs = model(parity['inputs'])
    assert_stages_close(outs, parity['stages'], parity['meta']['tolerances']['float32_impl'])


@pytest.mark.parametrize('wrapper', ['model', 'model_ema', 'state_dict', None])
def test_wrappers(official_sd, loaded, tmp_path, wrapper):
    path = tmp_path / 'ckpt.pth'
    torch.save(official_sd if wrapper is None else {wrapper: official_sd}, path)
    model = reduced_model(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    for key, value in loaded.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_model_is_preferred_over_model_ema(official_sd, loaded, tmp_path):
    ema = OrderedDict((k, v + 1 if v.is_floating_point() else v) for k, v in official_sd.items())
    path = tmp_path / 'cmt_xs.pth'
    torch.save({'model': official_sd, 'model_ema': ema}, path)
    model = reduced_model(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert torch.equal(model.stages[0].relative_pos, loaded.stages[0].relative_pos)


# ---------------------------------------------------------------------------------- converter
def test_converter_drops_classifier_and_is_idempotent(official_sd):
    once, report = convert_state_dict(official_sd)
    assert sorted({k.split('.')[0] for k in report.dropped}) == ['_bn', '_fc', 'head']
    assert not report.unmatched
    assert not any(k.startswith(('_fc', '_bn', 'head')) for k in once)
    twice, report2 = convert_state_dict(once)
    assert list(once) == list(twice)
    assert all(once[k] is twice[k] for k in once)
    assert report2.renamed == 0 and not report2.dropped and not report2.unmatched


def test_converter_key_mapping(official_sd):
    sd, _ = convert_cmt(official_sd)
    pairs = {
        'stem_conv1.weight': 'stem.conv1.weight',
        'stem_norm3.running_var': 'stem.norm3.running_var',
        'patch_embed_b.norm.bias': 'stages.1.downsample.norm.bias',
        'relative_pos_c': 'stages.2.relative_pos',
        'blocks_c.1.proj.weight': 'stages.2.blocks.1.lpu.weight',
        'blocks_a.0.attn.proj.weight': 'stages.0.blocks.0.attn.proj.weight',
        'blocks_a.0.attn.sr.0.weight': 'stages.0.blocks.0.attn.sr.weight',
        'blocks_a.0.attn.sr.1.running_mean': 'stages.0.blocks.0.attn.sr_norm.running_mean',
        'blocks_d.0.mlp.conv1.2.weight': 'stages.3.blocks.0.ffn.norm1.weight',
        'blocks_d.0.mlp.proj.weight': 'stages.3.blocks.0.ffn.dwconv.weight',
        'blocks_d.0.mlp.proj_bn.bias': 'stages.3.blocks.0.ffn.norm2.bias',
        'blocks_d.0.mlp.conv2.1.weight': 'stages.3.blocks.0.ffn.norm3.weight',
    }
    for old, new in pairs.items():
        assert sd[new] is official_sd[old], old


def test_detection(official_sd, loaded):
    assert detect_family(official_sd) == 'cmt'
    assert detect_family(loaded.state_dict()) == 'cmt'
    assert is_cmt({f'backbone.{k}'[len('backbone.'):]: v for k, v in official_sd.items()})
    van = parity_file('van_b0_reduced.pth')
    van_sd = unwrap_state_dict(van['checkpoint'])
    assert not is_cmt(van_sd)
    assert not is_cmt(convert_state_dict(van_sd)[0])


def test_wrong_arch_is_an_error(parity, tmp_path):
    path = tmp_path / 'cmt_reduced.pth'
    torch.save(parity['checkpoint'], path)
    model = CMT(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointMismatchError, match=r"arch='tiny'.*shape mismatches"):
        model.init_weights()


def test_wrong_family_is_an_error(tmp_path):
    van = parity_file('van_b0_reduced.pth')
    path = tmp_path / 'van_b0.pth.tar'
    torch.save(van['checkpoint'], path)
    model = CMT(arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointMismatchError, match='van'):
        model.init_weights()


def test_other_pretrain_size_is_resized_on_load(official_sd, loaded, tmp_path):
    # A 224 checkpoint into a model pretrained at 64: the biases are resized exactly as the
    # 224 model resizes them at run time for a 64x64 input, so the outputs agree.
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
    sd, _ = convert_cmt(official_sd)
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
    assert model.stages[0]._bias_cache is None


def test_bias_cache_in_eval(monkeypatch):
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
        assert len(calls) == 4, 'eval forward at the same size must reuse the cached bias'
        for a, b in zip(first, second):
            assert torch.equal(a, b)
        # New weights invalidate the cache.
        sd = model.state_dict()
        sd['stages.0.relative_pos'] = sd['stages.0.relative_pos'] + 1
        model.load_state_dict(sd)
        third = model(x)
        assert len(calls) == 8
        assert not torch.equal(first[0], third[0])
        # Another size recomputes.
        model(torch.randn(1, 3, 64, 96))
        assert len(calls) == 12
    model.train()
    assert all(stage._bias_cache is None for stage in model.stages)
    model(x)
    model(x)
    assert len(calls) == 20, 'no cache in training'


@pytest.mark.parametrize('size', [(8, 8), (16, 48), (33, 17), (1, 1)])
def test_tiny_inputs_run(size):
    # Stage maps smaller than the reduction ratio (even 1x1) still give one key.
    model = CMT(arch=dict(TINY, img_size=224)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    assert all(torch.isfinite(o).all() and o.shape[2] >= 1 and o.shape[3] >= 1 for o in outs)


# ---------------------------------------------------------------------------------- variants
def test_variants_and_aliases():
    expected = {  # REFERENCE.md: params of the classification code (fc 1280, 1000 classes)
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
    from mmhybrid.checkpoint.core import convert_checkpoint_file
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


def test_offline_conversion_of_reduced_file(parity, tmp_path):
    from mmhybrid.checkpoint.core import convert_checkpoint_file
    src = tmp_path / 'cmt_reduced.pth'
    torch.save(parity['checkpoint'], src)
    with pytest.raises(CheckpointMismatchError, match='matches no variant'):
        convert_checkpoint_file(str(src), None)
    result = convert_checkpoint_file(str(src), str(tmp_path / 'out.pth'), arch=REDUCED_TI)
    assert result.arch == 'custom' and result.report.ok
