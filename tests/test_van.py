"""VAN: what only VAN has. Parity and checkpoint conversion are in test_parity.py and
test_converters.py; the backbone contract in test_contract.py."""
import pytest
import torch

from mmhybrid.models import VAN


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


def test_layer_scale_off_is_none():
    arch = dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2])
    plain = VAN(arch=arch, layer_scale_init=None).eval()
    assert not any('layer_scale' in k for k in plain.state_dict())
    scaled = VAN(arch=arch, layer_scale_init=1.0).eval()
    assert sum('layer_scale' in k for k in scaled.state_dict()) == 2 * 4
    # With unit scales the two compute the same function.
    scaled.load_state_dict({**plain.state_dict(), **{
        k: torch.ones_like(v) for k, v in scaled.state_dict().items() if 'layer_scale' in k}})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(plain(x), scaled(x)):
            torch.testing.assert_close(a, b)
