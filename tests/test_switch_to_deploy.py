"""``HybridBackbone.switch_to_deploy()``: norms folded once for inference, every family.

The deployed model must give the eval-mode model's outputs (tiny archs here; the real CMT
weights in test_parity's ``cmt-224-deployed`` row), refuse training and later loads, and carry
the folded layout in its state dict.
"""
import copy

import pytest
import torch
import torch.nn as nn

from archs import CONTRACT_MODELS
from helpers import build_with_random_norms
from mmhybrid.models.layers.folding import ChannelAffine, bn_affine

FAMILIES = sorted(CONTRACT_MODELS)


def build(name: str, **overrides) -> nn.Module:
    return build_with_random_norms(name, **overrides).eval()


def max_relative_error(outs, refs) -> float:
    return max(((o - r).abs().max() / r.abs().max()).item() for o, r in zip(outs, refs))


@pytest.mark.parametrize('name', FAMILIES)
@pytest.mark.parametrize('channels_last', [None, False])
def test_deployed_outputs_equal_the_eval_model(name, channels_last):
    model = build(name, channels_last=channels_last)
    deployed = copy.deepcopy(model).switch_to_deploy()
    for size in ((64, 64), (97, 131)):
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            expected = model(x)
            assert max_relative_error(deployed(x), expected) < 1e-5
        # With gradients recorded the modules' own path runs (no inference rewrites).
        outs = deployed(x)
        assert max_relative_error(outs, expected) < 1e-5
        sum(o.sum() for o in outs).backward()  # differentiable w.r.t. what needs it


@pytest.mark.parametrize('name', FAMILIES)
def test_deployed_backbone_is_inference_only(name):
    model = build(name)
    model.train()
    deployed = model.switch_to_deploy()
    assert deployed is model and model.deployed and not model.training
    assert model.switch_to_deploy() is model  # idempotent
    model.eval()  # eval stays allowed
    with pytest.raises(RuntimeError, match='switch_to_deploy|deploy'):
        model.train()
    state = build(name).state_dict()
    with pytest.raises(RuntimeError, match='before switch_to_deploy'):
        model.load_state_dict(state)


def test_cmt_deploy_folds_the_norms():
    model = build('CMT')
    before = model.state_dict()
    model.switch_to_deploy()
    after = model.state_dict()
    # The reduction norms and the IRFFN's last two norms live in their convs now.
    for key in before:
        if '.attn.sr_norm.' in key or '.ffn.norm2.' in key or '.ffn.norm3.' in key:
            assert key not in after
    assert not any('sr_norm' in k or 'ffn.norm2' in k or 'ffn.norm3' in k for k in after)
    # The BatchNorms that stay are their fixed affine maps; no BatchNorm is left.
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    affines = [m for m in model.modules() if isinstance(m, ChannelAffine)]
    assert len(affines) == 3 + sum(len(s.blocks) for s in model.stages)  # stem + ffn.norm1
    # The LPU's residual is its centre tap: one more than the released weight there.
    block = model.stages[0].blocks[0]
    lpu_before = before['stages.0.blocks.0.lpu.weight']
    assert torch.equal(block.lpu.weight[:, 0, 1, 1], lpu_before[:, 0, 1, 1] + 1)
    assert torch.equal(block.lpu.weight[:, 0, 0, 0], lpu_before[:, 0, 0, 0])


def test_cmt_deploy_with_group_norms_folds_what_it_can():
    # GroupNorm has no fixed affine map: it stays, and the outputs still match.
    model = build('CMT', norm_cfg=dict(type='GN', num_groups=2))
    deployed = copy.deepcopy(model).switch_to_deploy()
    assert any(isinstance(m, nn.GroupNorm) for m in deployed.modules())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert max_relative_error(deployed(x), model(x)) < 1e-5


def test_channel_affine_is_the_eval_batch_norm():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(6)
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2)
    with torch.no_grad():
        bn.weight.normal_()
        bn.bias.normal_()
    assert ChannelAffine.from_batch_norm(bn) is bn  # training mode: no fixed map
    bn.eval()
    affine = ChannelAffine.from_batch_norm(bn)
    assert isinstance(affine, ChannelAffine)
    x = torch.randn(2, 6, 5, 7)
    torch.testing.assert_close(affine(x), bn(x))
    assert bn_affine(affine) == (affine.scale, affine.shift)
    gn = nn.GroupNorm(2, 6)
    assert ChannelAffine.from_batch_norm(gn) is gn


def test_van_deploy_folds_norms_and_layer_scales():
    model = build('VAN')
    with torch.no_grad():  # layer scales far from 1e-2, so that a wrong fold shows
        for block in (b for s in model.stages for b in s.blocks):
            block.layer_scale_1.normal_(0, 1)
            block.layer_scale_2.normal_(0, 1)
    deployed = copy.deepcopy(model).switch_to_deploy()
    keys = deployed.state_dict()
    assert not any('layer_scale' in k or '.norm1.' in k or '.norm2.' in k for k in keys)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in deployed.modules())
    assert all(b.shortcut_scale is not None for s in deployed.stages for b in s.blocks)
    x = torch.randn(2, 3, 97, 131)
    with torch.no_grad():
        assert max_relative_error(deployed(x), model(x)) < 1e-5


def test_van_deploy_without_layer_scales():
    model = build('VAN', layer_scale_init=None)
    deployed = copy.deepcopy(model).switch_to_deploy()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert max_relative_error(deployed(x), model(x)) < 1e-5


def test_transcnn_deploy_folds_every_batch_norm_it_can():
    model = build('TransCNN')
    deployed = copy.deepcopy(model).switch_to_deploy()
    # Only the grid norms stay (their output is also the residual), as fixed maps of BN.
    left = [name for name, m in deployed.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert left and all(name.endswith('attn.grid_norm') for name in left)
    x = torch.randn(2, 3, 97, 131)
    with torch.no_grad():
        assert max_relative_error(deployed(x), model(x)) < 1e-5


def test_uniformer_deploy_folds_layer_scales():
    arch = dict(CONTRACT_MODELS['UniFormer']['arch'], layer_scale_init=0.5)
    model = build('UniFormer', arch=arch)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if 'gamma' in name:
                param.normal_(0, 1)
    deployed = copy.deepcopy(model).switch_to_deploy()
    assert not any('gamma' in k or 'norm1.running' in k for k in deployed.state_dict())
    x = torch.randn(2, 3, 97, 131)
    with torch.no_grad():
        assert max_relative_error(deployed(x), model(x)) < 1e-5
