"""The token MLP of transformer blocks."""
from typing import Any, Dict

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer


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
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))
