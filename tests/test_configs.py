"""Every det/seg config builds through mmdet/mmseg and runs a forward pass."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(str(p.relative_to(REPO)) for d in ('det', 'seg')
                 for p in (REPO / 'configs' / d).glob('*.py'))
NAME_PATTERN = {
    'det': ('retinanet_', 'maskrcnn_'),
    'seg': ('fpn_', 'upernet_'),
}


def load(path: str) -> Config:
    cfg = Config.fromfile(str(REPO / path))
    # The ImageNet files are not on a test machine: build with random weights.
    cfg.model.backbone.init_cfg = None
    return cfg


def build_model(cfg: Config) -> torch.nn.Module:
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    return MODELS.build(cfg.model)


def test_configs_exist():
    assert any('van' in c for c in CONFIGS)


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds_and_runs(path):
    kind = Path(path).parent.name
    name = Path(path).name
    assert name.startswith(NAME_PATTERN[kind]), f'{name}: unexpected head prefix'
    cfg = load(path)
    assert cfg.custom_imports['imports'] == ['mmhybrid']
    assert cfg.model.backbone.type.startswith('mmhybrid.')
    assert cfg.default_scope == ('mmdet' if kind == 'det' else 'mmseg')
    if kind == 'seg':
        assert cfg.model.get('pretrained') is None, 'seg configs must not pass `pretrained`'
    model = build_model(cfg).eval()
    backbone = model.backbone
    if kind == 'det' or 'neck' in cfg.model:
        assert list(cfg.model.neck.in_channels) == list(backbone.out_channels)
    else:
        assert list(cfg.model.decode_head.in_channels) == list(backbone.out_channels)
        assert cfg.model.auxiliary_head.in_channels == \
            backbone.out_channels[cfg.model.auxiliary_head.in_index]
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 96, 128))
    assert all(torch.isfinite(f).all() for f in feats)
    # The heads get contiguous NCHW maps: mmcv's RoIAlign reads raw NCHW memory and silently
    # returns wrong features for channels-last-strided ones.
    assert all(f.is_contiguous() for f in feats)


@pytest.mark.parametrize('path', CONFIGS)
def test_config_points_at_official_checkpoint(path):
    init_cfg = Config.fromfile(str(REPO / path)).model.backbone.init_cfg
    assert init_cfg['type'] == 'Pretrained'
    assert init_cfg['checkpoint'].startswith('pretrained/')
