"""Conversion of the authors' released checkpoints, one table for every family.

Rows are the official files of the parity data (weights rebuilt by the parity rule, exactly as
the released file holds them): what the converter drops and renames, idempotence, family
detection, loading through ``init_cfg=Pretrained`` (as released, in other wrappers, from a
detector file), clear errors for a wrong arch or family, and offline conversion (the API and the
``tools/convert_checkpoint.py`` CLI).
"""
import argparse
import hashlib
import json
import re
import subprocess
import sys
from collections import OrderedDict
from typing import NamedTuple

import pytest
import torch

from archs import PARITY_MODELS, UNIFORMER_CLASSIFICATION
from helpers import (OFFICIAL_FILES, REPO, assert_stages_close, converted_weights,
                     official_checkpoint, official_state_dict, parity_case, reduced_model)
from mmhybrid.checkpoint import (CheckpointMismatchError, convert_state_dict, detect_family,
                                 get_converter)
from mmhybrid.checkpoint.core import convert_checkpoint_file
from mmhybrid.models import VAN
from mmhybrid.registry import MODELS

pytestmark = pytest.mark.quick  # `make test-quick`


class Row(NamedTuple):
    family: str
    dropped: str  # regex of the official keys the converter drops (not backbone weights)
    num_dropped: int
    renames: dict  # official key -> mmhybrid key (the very same tensor)
    converted_prefixes: tuple
    zoo_arch: str  # a released variant the reduced file does not fit


ROWS = {
    'van_b0_reduced': Row('van', r'^head\.', 2, {
        'patch_embed1.proj.weight': 'stages.0.downsample.proj.weight',
        'block1.0.attn.spatial_gating_unit.conv0.weight': 'stages.0.blocks.0.attn.lka.conv0.weight',
        'block3.1.mlp.dwconv.dwconv.bias': 'stages.2.blocks.1.mlp.dwconv.bias',
        'block3.1.attn.proj_2.bias': 'stages.2.blocks.1.attn.proj_2.bias',
        'norm4.bias': 'stages.3.norm.bias'}, ('stages', ), 'b0'),
    # Classifier, final norm, and the ICLR'22 files' geometry buffers (2 per block).
    'crossformer_tiny_reduced': Row(
        'crossformer', r'^(head|norm)\.|\.attn\.(biases|relative_position_index)$', 4 + 2 * 8, {
            'layers.0.downsample.reductions.1.weight': 'stages.1.downsample.reductions.1.weight',
            'patch_embed.projs.3.weight': 'stages.0.downsample.projs.3.weight',
            'layers.3.blocks.1.attn.pos.pos3.2.bias': 'stages.3.blocks.1.attn.pos.pos3.2.bias'},
        ('stages', ), 'tiny'),
    # CrossFormer++ files (main-branch code): no geometry buffers; the cooling layers renamed.
    'crossformerpp_small_reduced': Row(
        'crossformer', r'^(head|norm)\.', 4, {
            'layers.2.blocks.2.ex_conv.weight': 'stages.2.blocks.2.cooling.conv.weight',
            'layers.2.blocks.2.ex_ln.bias': 'stages.2.blocks.2.cooling.norm.bias',
            'layers.1.blocks.2.attn.qkv.weight': 'stages.1.blocks.2.attn.qkv.weight',
            'patch_embed.norm.weight': 'stages.0.downsample.norm.weight'},
        ('stages', ), 'pp-small'),
    # Classifier and the final BatchNorm2d (weight, bias, running stats, num_batches_tracked).
    'uniformer_small_reduced': Row('uniformer', r'^(head|norm)\.', 7, {
        'patch_embed1.norm.weight': 'stages.0.downsample.norm.weight',
        'blocks3.3.attn.proj.weight': 'stages.2.blocks.3.attn.proj.weight',
        'blocks2.0.attn.weight': 'stages.1.blocks.0.attn.weight'}, ('stages', ), 'small'),
    'uniformer_smallplus_reduced': Row('uniformer', r'^(head|norm)\.', 7, {
        'patch_embed1.proj.0.weight': 'stages.0.downsample.proj.0.weight',
        'patch_embed4.proj.1.num_batches_tracked':
            'stages.3.downsample.proj.1.num_batches_tracked',
        'blocks4.0.mlp.fc2.weight': 'stages.3.blocks.0.mlp.fc2.weight'}, ('stages', ),
        'small_plus'),
    # Both classifiers (pooled map and class token) with their norms: BatchNorm2d (5 keys),
    # LayerNorm (2), two heads (2 each).
    'uniformer_light_xxs_reduced': Row('uniformer_light', r'^(head|norm|head_cls|norm_cls)\.', 11, {
        'cls_token': 'stages.2.cls_token',
        'cls_upsample.weight': 'stages.3.cls_upsample.weight',
        'patch_embed1.proj.3.weight': 'stages.0.downsample.proj.3.weight',
        'patch_embed3.norm.bias': 'stages.2.downsample.norm.bias',
        'blocks3.2.attn.qkv.weight': 'stages.2.blocks.2.attn.qkv.weight',
        'blocks1.0.norm1.running_var': 'stages.0.blocks.0.norm1.running_var'}, ('stages', ),
        'xxs'),
    'cmt_tiny_reduced': Row('cmt', r'^(_fc|_bn|head)\.', 9, {
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
        'blocks_d.0.mlp.conv2.1.weight': 'stages.3.blocks.0.ffn.norm3.weight'},
        ('stages', 'stem'), 'tiny'),
    'transcnn_small_reduced': Row('transcnn', r'^classifier\.1\.', 2, {
        'patch_embed.0.weight': 'stages.0.downsample.conv1.weight',
        'blocks.2.1.conv.conv3.1.running_mean': 'stages.2.blocks.1.irb.norm3.running_mean',
        'ds4.norm2.bias': 'stages.3.downsample.norm2.bias'}, ('stages', ), 'small'),
    # HAT-Net's proj_norm is never used in forward: dropped (5 blocks, weight and bias).
    'hatnet_small_reduced': Row('hatnet', r'^classifier\.1\.|\.attn\.proj_norm\.', 2 + 2 * 5, {
        'blocks.2.0.conv.conv1.1.weight': 'stages.2.blocks.0.irb.pw1.weight',
        'blocks.3.0.conv.conv1.0.weight': 'stages.3.blocks.0.irb.norm_in.weight',
        'ds4.conv.bias': 'stages.3.downsample.conv.bias'}, ('stages', ), 'small'),
}
assert sorted(ROWS) == sorted(OFFICIAL_FILES)
NAMES = list(ROWS)
FAMILIES = sorted({row.family for row in ROWS.values()})
# How the released file of each family is compared after loading through init_cfg (224 case):
# model kwargs and the method whose outputs are the reference stages.
CLASSIFICATION_RUN = {
    'van_b0_reduced': ({}, 'forward'),
    'crossformer_tiny_reduced': ({}, 'forward'),
    'crossformerpp_small_reduced': ({}, 'forward'),
    'uniformer_small_reduced': (UNIFORMER_CLASSIFICATION, 'stage_outputs'),
    'uniformer_smallplus_reduced': (UNIFORMER_CLASSIFICATION, 'stage_outputs'),
    'uniformer_light_xxs_reduced': ({}, 'stage_outputs'),
    'cmt_tiny_reduced': ({}, 'forward'),
    'transcnn_small_reduced': ({}, 'forward'),
    'hatnet_small_reduced': ({}, 'forward'),
}
# What else the released files hold next to the weights (train.py of CMT pickles an argparse
# Namespace: no code may run on load; the PVT-style TransCNN/HAT-Net files keep the epoch).
RELEASED_EXTRAS = {
    'cmt_tiny_reduced': lambda: {'epoch': 299, 'args': argparse.Namespace(
        model='cmt_ti', input_size=160, lr=8e-4)},
    'transcnn_small_reduced': lambda: {'epoch': 299},
    'hatnet_small_reduced': lambda: {'epoch': 299},
    # main_light.py saves the argparse Namespace and the EMA weights next to the model.
    'uniformer_light_xxs_reduced': lambda: {'epoch': 599, 'args': argparse.Namespace(
        model='uniformer_xxs', input_size=224), 'model_ema': OrderedDict()},
}


def init_cfg(path) -> dict:
    return dict(type='Pretrained', checkpoint=str(path))


def assert_same_weights(model, name: str) -> None:
    """``model`` holds exactly the weights of the converted official file ``name``."""
    expected = converted_weights(name)
    assert list(model.state_dict()) == list(expected)
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key


# ------------------------------------------------------------------------------- converter
@pytest.mark.parametrize('name', NAMES)
def test_converter_drops_only_non_backbone_keys(name):
    row = ROWS[name]
    official = official_state_dict(name)
    sd, report = convert_state_dict(official)
    assert report.family == row.family
    assert report.dropped == [k for k in official if re.search(row.dropped, k)]
    assert len(report.dropped) == row.num_dropped
    assert report.ok and not report.unmatched
    assert len(sd) + len(report.dropped) == len(official)
    assert report.renamed == len(sd)  # every kept key changes name
    assert not any(re.search(row.dropped, k) for k in sd)
    assert {k.split('.')[0] for k in sd} == set(row.converted_prefixes)


@pytest.mark.parametrize('name', NAMES)
def test_converter_renames(name):
    official = official_state_dict(name)
    sd, _ = convert_state_dict(official)
    for old, new in ROWS[name].renames.items():
        assert sd[new] is official[old], old


@pytest.mark.parametrize('name', NAMES)
def test_converter_is_idempotent(name):
    once, _ = convert_state_dict(official_state_dict(name))
    # Through the dispatcher and through the family's own converter.
    for convert in (convert_state_dict, get_converter(ROWS[name].family).convert):
        twice, report = convert(once)
        assert list(once) == list(twice)
        assert all(once[k] is twice[k] for k in once)
        assert report.renamed == 0 and not report.dropped and not report.unmatched


@pytest.mark.parametrize('name', NAMES)
def test_family_detection(name):
    """Each family's detector claims its own files, official and converted, and no other."""
    family = ROWS[name].family
    official = official_state_dict(name)
    converted, _ = convert_state_dict(official)
    # The official file, the converter's output, and a loaded model's own state dict.
    for state_dict in (official, converted, converted_weights(name)):
        assert detect_family(state_dict) == family
        for other in FAMILIES:
            assert get_converter(other).detect(state_dict) == (other == family), other


# ------------------------------------------------------------------------- init_cfg loading
@pytest.mark.parametrize('name', NAMES)
def test_parity_after_init_cfg_loads_the_released_file(name, tmp_path):
    checkpoint = official_checkpoint(name)
    extras = RELEASED_EXTRAS.get(name)
    if extras is not None:
        checkpoint.update(extras())
    path = tmp_path / f'{name}.pth'
    torch.save(checkpoint, path)
    if name == 'cmt_tiny_reduced':  # the Namespace needs the safe loader
        with pytest.raises(Exception):
            torch.load(path, weights_only=True)
    kwargs, method = CLASSIFICATION_RUN[name]
    model = reduced_model(name, init_cfg=init_cfg(path), **kwargs)
    model.init_weights()
    model.eval()
    data = parity_case(name)
    with torch.no_grad():
        outs = getattr(model, method)(data['inputs'])
    assert_stages_close(outs, data['stages'], data['meta']['tolerances']['float32_impl'])


WRAPPERS = ['model', 'state_dict', 'model_ema', 'plain', 'module']


def wrapped(state_dict, wrapper):
    if wrapper == 'plain':
        return state_dict
    if wrapper == 'module':  # saved from a DDP-wrapped model
        return {'model': OrderedDict(('module.' + k, v) for k, v in state_dict.items())}
    return {wrapper: state_dict}


@pytest.mark.parametrize('wrapper', WRAPPERS)
@pytest.mark.parametrize('name', NAMES)
def test_init_cfg_unwraps(name, wrapper, tmp_path):
    path = tmp_path / 'ckpt.pth'
    torch.save(wrapped(official_state_dict(name), wrapper), path)
    model = reduced_model(name, init_cfg=init_cfg(path))
    model.init_weights()
    assert_same_weights(model, name)


@pytest.mark.parametrize('name', NAMES)
def test_model_is_preferred_over_model_ema(name, tmp_path):
    official = official_state_dict(name)
    ema = OrderedDict((k, v + 1 if v.is_floating_point() else v) for k, v in official.items())
    path = tmp_path / 'ckpt_with_ema.pth'
    torch.save({'model': official, 'model_ema': ema}, path)
    model = reduced_model(name, init_cfg=init_cfg(path))
    model.init_weights()
    assert_same_weights(model, name)


def uniformer_out_norms(name):
    """The official det/seg UniFormer(-light) adds a LayerNorm per output: backbone.norm1..4."""
    def add(sd):
        torch.manual_seed(0)
        for i, dim in enumerate(PARITY_MODELS[name][1]['embed_dims']):
            sd[f'backbone.norm{i + 1}.weight'] = 1 + 0.1 * torch.randn(dim)
            sd[f'backbone.norm{i + 1}.bias'] = 0.1 * torch.randn(dim)
    return add


DETECTOR_FILES = {
    # name: (case, reference key, method, classifier keys, extra backbone keys)
    'crossformer_tiny_reduced': ('crossformer_tiny_reduced_det', 'stages_iclr', 'forward',
                                 ('head.', 'norm.'), None),
    'uniformer_small_reduced': ('uniformer_small_reduced_det', 'stages', 'stage_outputs',
                                ('head.', 'norm.'), uniformer_out_norms('uniformer_small_reduced')),
    'uniformer_light_xxs_reduced': ('uniformer_light_xxs_reduced_det', 'stages', 'stage_outputs',
                                    ('head.', 'norm.', 'head_cls.', 'norm_cls.'),
                                    uniformer_out_norms('uniformer_light_xxs_reduced')),
    # The dense code with the ImageNet groups (the variant's defaults) at 224x320.
    'crossformerpp_small_reduced': ('crossformerpp_small_reduced_224x320', 'stages', 'forward',
                                    ('head.', 'norm.'), None),
}


@pytest.mark.parametrize('name', list(DETECTOR_FILES))
def test_parity_after_init_cfg_loads_an_official_detector_file(name, tmp_path):
    """An official mmdet/mmseg training checkpoint: the backbone keys under ``backbone.`` (no
    classifier), neck and head keys next to them, ``{'state_dict', 'meta'}``."""
    case, key, method, classifier, extra = DETECTOR_FILES[name]
    sd = OrderedDict(('backbone.' + k, v) for k, v in official_state_dict(name).items()
                     if not k.startswith(classifier))
    if extra is not None:
        extra(sd)
    sd['neck.lateral_convs.0.conv.weight'] = torch.zeros(4, 16, 1, 1)
    checkpoint = {'meta': {'epoch': 12}, 'state_dict': sd}
    path = tmp_path / f'mask_rcnn_{name}.pth'
    torch.save(checkpoint, path)
    model = reduced_model(name, init_cfg=init_cfg(path))
    model.init_weights()
    model.eval()
    if name.startswith('uniformer'):
        for i in range(4):
            norm = model.out_norms[str(i)]
            assert torch.equal(norm.weight, sd[f'backbone.norm{i + 1}.weight'])
            assert torch.equal(norm.bias, sd[f'backbone.norm{i + 1}.bias'])
    data = parity_case(case)
    with torch.no_grad():
        outs = getattr(model, method)(data['inputs'])
    assert_stages_close(outs, data[key], data['meta']['tolerances']['float32_impl'])


# ----------------------------------------------------------------------------------- errors
@pytest.mark.parametrize('name', NAMES)
def test_wrong_arch_is_an_error(name, tmp_path):
    path = tmp_path / 'reduced.pth'
    torch.save(official_checkpoint(name), path)
    arch = ROWS[name].zoo_arch
    model_type = PARITY_MODELS[name][0]
    with torch.device('meta'):
        model = MODELS.get(f'mmhybrid.{model_type}')(arch=arch, init_cfg=init_cfg(path))
    with pytest.raises(CheckpointMismatchError, match=rf"arch='{arch}'.*shape mismatches"):
        model.init_weights()


def van_in_mmhybrid_layout():
    van = VAN(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2]))
    return {'state_dict': van.state_dict()}


WRONG_FAMILY = [
    # (model of file, checkpoint of another family, that family)
    ('van_b0_reduced', lambda: official_checkpoint('cmt_tiny_reduced'), 'cmt'),
    ('crossformer_tiny_reduced', van_in_mmhybrid_layout, 'van'),
    ('uniformer_small_reduced', lambda: official_checkpoint('van_b0_reduced'), 'van'),
    ('uniformer_smallplus_reduced', lambda: official_checkpoint('crossformer_tiny_reduced'),
     'crossformer'),
    # UniFormer and UniFormer-light share their stage-1/2 blocks: the class token tells them apart.
    ('uniformer_light_xxs_reduced', lambda: official_checkpoint('uniformer_smallplus_reduced'),
     'uniformer'),
    ('uniformer_small_reduced', lambda: official_checkpoint('uniformer_light_xxs_reduced'),
     'uniformer_light'),
    ('cmt_tiny_reduced', lambda: official_checkpoint('van_b0_reduced'), 'van'),
    ('transcnn_small_reduced', lambda: official_checkpoint('hatnet_small_reduced'), 'hatnet'),
    ('hatnet_small_reduced', lambda: official_checkpoint('transcnn_small_reduced'), 'transcnn'),
]


@pytest.mark.parametrize('name,make_checkpoint,other', WRONG_FAMILY,
                         ids=[f'{n}-{o}' for n, _, o in WRONG_FAMILY])
def test_wrong_family_is_an_error(name, make_checkpoint, other, tmp_path):
    path = tmp_path / 'other.pth'
    torch.save(make_checkpoint(), path)
    model = reduced_model(name, init_cfg=init_cfg(path))
    with pytest.raises(CheckpointMismatchError, match=f"looks like a '{other}' checkpoint"):
        model.init_weights()


# -------------------------------------------------------------------------- other layouts
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


def test_mmpretrain_van_file_gives_the_same_weights(tmp_path):
    path = tmp_path / 'van_mmpretrain.pth'
    torch.save(to_mmpretrain(official_state_dict('van_b0_reduced')), path)
    model = reduced_model('van_b0_reduced', init_cfg=init_cfg(path))
    model.init_weights()
    assert_same_weights(model, 'van_b0_reduced')


# ----------------------------------------------------------------------- offline conversion
@pytest.mark.parametrize('name', NAMES)
def test_offline_conversion_of_reduced_file(name, tmp_path):
    src = tmp_path / f'{name}.pth'
    torch.save(official_checkpoint(name), src)
    with pytest.raises(CheckpointMismatchError, match='matches no variant'):
        convert_checkpoint_file(str(src), None)
    dst = tmp_path / 'out.pth'
    result = convert_checkpoint_file(str(src), str(dst), arch=PARITY_MODELS[name][1])
    assert result.family == ROWS[name].family
    assert result.arch == 'custom' and result.report.ok
    converted = torch.load(dst, weights_only=True)
    # Everything but the per-output norms a model adds on top of the pretrained trunk.
    expected = {k: v for k, v in converted_weights(name).items()
                if not k.startswith('out_norms.')}
    assert sorted(converted) == sorted(expected)
    assert all(torch.equal(converted[k], v) for k, v in expected.items())


def run_cli(*args):
    return subprocess.run([sys.executable, str(REPO / 'tools' / 'convert_checkpoint.py'),
                           *map(str, args)], capture_output=True, text=True, timeout=300)


VAN_ARCH = json.dumps(PARITY_MODELS['van_b0_reduced'][1])


def test_convert_cli(tmp_path):
    src = tmp_path / 'van_b0_reduced.pth.tar'
    torch.save(official_checkpoint('van_b0_reduced'), src)
    src_bytes = src.read_bytes()
    dst = tmp_path / 'out' / 'van.pth'
    # Without --arch, no official variant matches the reduced model: refuse, write nothing.
    result = run_cli(src, dst)
    assert result.returncode == 2 and 'matches no variant' in result.stderr
    assert not dst.exists()
    result = run_cli(src, dst, '--arch', VAN_ARCH)
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(dst.read_bytes()).hexdigest()
    assert f'sha256: {digest}' in result.stdout
    assert 'dropped [2]: head.weight, head.bias' in result.stdout
    assert src.read_bytes() == src_bytes
    sd = torch.load(dst, weights_only=True)
    reduced_model('van_b0_reduced').load_state_dict(sd, strict=True)
    assert not [p for p in tmp_path.joinpath('out').iterdir() if p.name != 'van.pth'], \
        'temporary files left behind'
    # Existing DST is kept unless --overwrite; SRC is never a destination.
    assert run_cli(src, dst, '--arch', VAN_ARCH).returncode == 2
    assert run_cli(src, dst, '--arch', VAN_ARCH, '--overwrite').returncode == 0
    result = run_cli(src, src, '--arch', VAN_ARCH, '--overwrite')
    assert result.returncode == 2 and 'over its source' in result.stderr
    assert src.read_bytes() == src_bytes
    # A converted file converts again to the same thing (idempotent) and checks clean.
    assert run_cli(dst, '--check', '--arch', VAN_ARCH).returncode == 0


def test_convert_cli_unmatched_keys_fail(tmp_path):
    sd = official_state_dict('van_b0_reduced')
    sd['some_extra.weight'] = torch.zeros(3)
    src = tmp_path / 'extra.pth'
    torch.save({'state_dict': sd}, src)
    result = run_cli(src, tmp_path / 'dst.pth', '--arch', VAN_ARCH)
    assert result.returncode == 2
    assert 'some_extra.weight' in result.stderr
    assert not (tmp_path / 'dst.pth').exists()


def test_convert_cli_finds_the_official_arch(tmp_path):
    torch.manual_seed(0)
    model = VAN(arch='b0')
    official = {}
    for key, value in model.state_dict().items():  # back to the official key layout
        stage, rest = int(key.split('.')[1]), key.split('.', 2)[2]
        if rest.startswith('downsample.'):
            official[f'patch_embed{stage + 1}.' + rest[len('downsample.'):]] = value
        elif rest.startswith('norm.'):
            official[f'norm{stage + 1}.' + rest[len('norm.'):]] = value
        else:
            rest = rest[len('blocks.'):].replace('attn.lka.', 'attn.spatial_gating_unit.')
            rest = rest.replace('mlp.dwconv.', 'mlp.dwconv.dwconv.')
            official[f'block{stage + 1}.{rest}'] = value
    official['head.weight'] = torch.zeros(1000, 256)
    src = tmp_path / 'van_b0.pth.tar'
    torch.save({'state_dict': official}, src)
    result = run_cli(src, tmp_path / 'b0.pth')
    assert result.returncode == 0, result.stderr
    assert 'arch: b0' in result.stdout


# ------------------------------------------------------- every way of loading: one checked path
def detector_layout(name: str) -> 'OrderedDict[str, torch.Tensor]':
    """The released file's backbone keys under ``backbone.`` next to a neck key, as an mmdet
    training checkpoint holds them (classifier keys dropped by the converter anyway)."""
    sd = OrderedDict(('backbone.' + k, v) for k, v in official_state_dict(name).items())
    sd['neck.lateral_convs.0.conv.weight'] = torch.zeros(4, 16, 1, 1)
    return sd


INIT_CFG_FORMS = {
    'dict': lambda path: dict(type='Pretrained', checkpoint=str(path)),
    'list': lambda path: [dict(type='Pretrained', checkpoint=str(path))],
    # Another initializer first: mmengine applies it, then the checked load overwrites.
    'list_with_other_init': lambda path: [dict(type='Constant', layer='Conv2d', val=0.5),
                                          dict(type='Pretrained', checkpoint=str(path))],
    'list_with_prefix': lambda path: [dict(type='Pretrained', checkpoint=str(path),
                                           prefix='backbone.')],
}


@pytest.mark.parametrize('scope', [None, 'mmdet'])
@pytest.mark.parametrize('form', list(INIT_CFG_FORMS))
@pytest.mark.parametrize('name', NAMES)
def test_init_cfg_forms_load_completely(name, form, scope, tmp_path):
    """A dict, a list, a list with other initializers, with or without ``prefix``, whatever
    mmengine's default scope (a detector's is ``mmdet``): the released file is recognised,
    converted and loaded completely (mmengine's own ``Pretrained`` would load nothing from the
    official layout and only warn)."""
    from mmengine.registry import DefaultScope
    path = tmp_path / f'{name}.pth'
    checkpoint = ({'state_dict': detector_layout(name)} if form == 'list_with_prefix'
                  else official_checkpoint(name))
    torch.save(checkpoint, path)
    model = reduced_model(name, init_cfg=INIT_CFG_FORMS[form](path))
    with DefaultScope.overwrite_default_scope(scope):
        model.init_weights()
    expected = converted_weights(name)
    for key, value in model.state_dict().items():
        if not key.startswith('out_norms.'):
            assert torch.equal(value, expected[key]), key


@pytest.mark.parametrize('form', ['dict', 'list', 'list_with_other_init'])
def test_init_cfg_forms_refuse_a_wrong_file(form, tmp_path):
    path = tmp_path / 'cmt.pth'
    torch.save(official_checkpoint('cmt_tiny_reduced'), path)
    model = reduced_model('van_b0_reduced', init_cfg=INIT_CFG_FORMS[form](path))
    with pytest.raises(CheckpointMismatchError, match="looks like a 'cmt' checkpoint"):
        model.init_weights()


class Detector(torch.nn.Module):
    """A stand-in detector: a backbone and a neck, as mmengine's ``load_from`` sees them."""

    def __init__(self, backbone: torch.nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = torch.nn.Conv2d(16, 4, 1)


@pytest.mark.parametrize('name', NAMES)
def test_load_from_of_a_detector_checkpoint_loads_the_backbone(name):
    """mmengine's ``load_from`` (``load_state_dict(strict=False)``) of a checkpoint holding the
    backbone under ``backbone.``: every key is placed, through the backbone's load hook."""
    from mmengine.runner.checkpoint import load_state_dict
    weights = converted_weights(name)
    model = Detector(reduced_model(name))
    load_state_dict(model, {'backbone.' + k: v for k, v in weights.items()}, strict=False)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, weights[key]), key


def test_load_from_of_a_plain_backbone_file_is_an_error(tmp_path):
    """A file written by tools/convert_checkpoint.py (plain backbone keys) given to mmengine's
    ``load_from``: nothing would reach the backbone; the load stops and says what to do."""
    from mmengine.runner.checkpoint import load_checkpoint
    path = tmp_path / 'converted.pth'
    convert_checkpoint_file(_saved(official_checkpoint('van_b0_reduced'), tmp_path),
                            str(path), arch=PARITY_MODELS['van_b0_reduced'][1])
    model = Detector(reduced_model('van_b0_reduced'))
    with pytest.raises(CheckpointMismatchError, match=r"no weights.*own keys without the prefix"):
        load_checkpoint(model, str(path), strict=False)


@pytest.mark.parametrize('damage', ['missing', 'official_layout', 'shape'])
def test_partial_or_foreign_backbone_weights_stop_the_load(damage, tmp_path):
    """``load_from`` / ``load_state_dict(strict=False)`` with backbone keys that do not fit:
    the backbone's load hook raises and names them, instead of mmengine's warning."""
    from mmengine.runner.checkpoint import load_state_dict
    weights = converted_weights('van_b0_reduced')
    if damage == 'missing':
        weights.pop('stages.0.blocks.0.attn.proj_1.weight')
        match = r'absent from the checkpoint: stages\.\*\.blocks\.\*\.attn\.proj_1\.weight'
    elif damage == 'official_layout':
        weights = dict(official_state_dict('van_b0_reduced'))
        match = 'keys the model does not have: patch_embed'
    else:
        weights['stages.0.norm.weight'] = torch.ones(3)
        match = r'shape mismatches.*stages\.0\.norm\.weight'
    sd = {'backbone.' + k: v for k, v in weights.items()}
    model = Detector(reduced_model('van_b0_reduced'))
    with pytest.raises(CheckpointMismatchError, match=match):
        load_state_dict(model, sd, strict=False)
    with pytest.raises(CheckpointMismatchError, match=match):
        model.backbone.load_state_dict(weights, strict=False)


def _saved(checkpoint: dict, tmp_path) -> str:
    path = tmp_path / 'released.pth'
    torch.save(checkpoint, path)
    return str(path)
