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
