"""VAN: parity with the official code, conversion of official and mmpretrain files."""
from collections import OrderedDict

import pytest
import torch

from conftest import assert_stages_close, parity_file
from mmhybrid.checkpoint import (CheckpointMismatchError, convert_state_dict, load_converted,
                                 unwrap_state_dict)
from mmhybrid.models import VAN

REDUCED_B0 = dict(embed_dims=[16, 32, 80, 128], depths=[1, 1, 2, 1], mlp_ratios=[8, 8, 4, 4])


def reduced_model(**kwargs) -> VAN:
    return VAN(arch=REDUCED_B0, **kwargs)


def to_mmpretrain(sd):
    """The key layout of mmpretrain's van2mmpretrain converter (written from its documentation)."""
    out = OrderedDict()
    for k, v in sd.items():
        if k.startswith('head.'):
            out['head.fc.' + k[len('head.'):]] = v
            continue
        k = k.replace('.proj.', '.projection.') if k.startswith('patch_embed') else k
        if k.startswith('block'):
            k = 'blocks' + k[len('block'):]
            k = k.replace('conv0', 'DW_conv').replace('conv_spatial', 'DW_D_conv')
            k = k.replace('dwconv.dwconv', 'dwconv')
        out['backbone.' + k] = v
    return {'state_dict': out, 'meta': {'converted_by': 'mmpretrain'}}


@pytest.fixture(scope='module')
def parity():
    return parity_file('van_b0_reduced.pth')


@pytest.fixture(scope='module')
def loaded(parity):
    model = reduced_model()
    sd, report = convert_state_dict(unwrap_state_dict(parity['checkpoint']))
    load_converted(model, sd, report)
    assert report.ok and report.dropped == ['head.weight', 'head.bias']
    return model.eval()


def test_parity_224(parity, loaded):
    with torch.no_grad():
        outs = loaded(parity['inputs'])
    assert_stages_close(outs, parity['stages'], parity['meta']['tolerances']['float32_impl'])


def test_parity_230x302(loaded):
    data = parity_file('van_b0_reduced_230x302.pth')
    assert tuple(data['inputs'].shape[-2:]) == (230, 302)
    with torch.no_grad():
        outs = loaded(data['inputs'])
    assert_stages_close(outs, data['stages'], data['meta']['tolerances']['float32_impl'])


def test_parity_float64(parity, loaded):
    model = reduced_model().eval()
    model.load_state_dict(loaded.state_dict())
    model.double()
    with torch.no_grad():
        outs = model(parity['inputs'].double())
    assert_stages_close([o.float() for o in outs], parity['stages'],
                        parity['meta']['tolerances']['float64_impl'])


def test_converter_is_idempotent(parity):
    once, _ = convert_state_dict(unwrap_state_dict(parity['checkpoint']))
    twice, report = convert_state_dict(once)
    assert list(once) == list(twice)
    assert all(once[k] is twice[k] for k in once)
    assert report.renamed == 0 and not report.dropped and not report.unmatched


def test_mmpretrain_file_gives_the_same_weights(parity, tmp_path, loaded):
    path = tmp_path / 'van_mmpretrain.pth'
    torch.save(to_mmpretrain(parity['checkpoint']['state_dict']), path)
    model = reduced_model(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    for key, value in loaded.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_init_cfg_loads_official_file(parity, tmp_path, loaded):
    path = tmp_path / 'van_b0.pth.tar'
    torch.save(parity['checkpoint'], path)
    model = reduced_model(init_cfg=dict(type='Pretrained', checkpoint=str(path))).eval()
    model.init_weights()
    with torch.no_grad():
        outs = model(parity['inputs'])
    assert_stages_close(outs, parity['stages'], parity['meta']['tolerances']['float32_impl'])


def test_wrong_arch_is_an_error(parity, tmp_path):
    path = tmp_path / 'van_reduced.pth.tar'
    torch.save(parity['checkpoint'], path)
    model = VAN(arch='b0', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointMismatchError, match=r"arch='b0'.*shape mismatches"):
        model.init_weights()


def test_real_variant_param_counts():
    # Backbone parameters (no classifier) of the released variants: the paper's totals minus
    # the head (dims[-1] * 1000 + 1000).
    expected = {'b0': 4.1e6, 'b1': 13.9e6, 'b2': 26.6e6, 'b3': 44.8e6}
    for arch, total in expected.items():
        with torch.device('meta'):
            model = VAN(arch=arch)
        params = sum(p.numel() for p in model.parameters())
        head = model.stage_channels[-1] * 1000 + 1000
        assert params + head == pytest.approx(total, rel=0.02), arch
