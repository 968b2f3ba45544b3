"""`type='mmhybrid.X'` builds from mmdet's and from mmseg's registries."""
import subprocess
import sys

import pytest
import torch

ARCH = dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2])


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_builds_from_downstream_scope(scope):
    from mmengine.registry import DefaultScope
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    import mmhybrid  # noqa: F401  (what custom_imports does)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(dict(type='mmhybrid.VAN', arch=ARCH))
    from mmhybrid.models import VAN
    assert type(model) is VAN
    assert len(model(torch.randn(1, 3, 64, 64))) == 4


def test_import_is_light():
    # Importing the package must not pull in mmdet or mmseg.
    code = ('import sys, mmhybrid; '
            'print(any(m.split(".")[0] in ("mmdet", "mmseg") for m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip()
    assert out == 'False'


def test_registry_scope():
    from mmhybrid.registry import MODELS
    assert MODELS.scope == 'mmhybrid'
    assert MODELS.get('mmhybrid.VAN') is not None
