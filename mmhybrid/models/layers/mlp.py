"""The token MLP of transformer blocks."""
from typing import Any, Dict

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer

from .fusion import fusion_enabled, gelu_, linear_act, plain_calls
from .linear import Linear


class Mlp(nn.Module):
    """Token MLP on ``(..., C)``: Linear → act → Linear (names ``fc1``, ``act``, ``fc2``).

    Args:
        dim: Input and output channels.
        hidden_dim: Hidden channels.
        act_cfg: Activation config.
    """

    def __init__(self,
                 dim: int,
                 hidden_dim: int,
                 act_cfg: Dict[str, Any]) -> None:
        super().__init__()
        self.fc1 = Linear(dim, hidden_dim)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not fusion_enabled(x):
            return self.fc2(self.act(self.fc1(x)))
        # Inference: the activation applied as fc1's product writes it (oneDNN), or in place
        # on fc1's fresh output. The product replaces fc1's call only for a linear layer of
        # ours or torch's without hooks (a replaced or hooked fc1 is called as it is).
        if type(self.fc1) in (Linear, nn.Linear) and plain_calls(self.fc1):
            return self.fc2(linear_act(x, self.fc1.weight, self.fc1.bias, self.act))
        return self.fc2(gelu_(self.act, self.fc1(x), self.fc1))
