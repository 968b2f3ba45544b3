"""The stage skeleton: a downsampling module followed by blocks (and an optional norm)."""
from typing import Any, Optional, Sequence

import torch
import torch.nn as nn

from .checkpoint import maybe_checkpoint


class Stage(nn.Module):
    """``norm(blocks(downsample(x)))`` on NCHW maps, each block optionally checkpointed.

    Families whose blocks take extra inputs (e.g. a position bias shared by the stage) or work
    on another layout override :meth:`forward` and call :meth:`run_blocks`.

    Args:
        downsample: The stage's downsampling (stem or patch embedding).
        blocks: The stage's blocks.
        with_cp: Run every block through activation checkpointing.
        norm: A norm that ends the stage (part of the pretrained trunk), or ``None``.
    """

    def __init__(self,
                 downsample: nn.Module,
                 blocks: Sequence[nn.Module],
                 with_cp: bool,
                 norm: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)
        if norm is not None:
            self.norm = norm
        self.with_cp = with_cp

    def run_blocks(self, x: torch.Tensor, *args: Any) -> torch.Tensor:
        """Applies the blocks in turn; ``args`` are passed to every block after ``x``."""
        for block in self.blocks:
            x = maybe_checkpoint(block, x, *args, enabled=self.with_cp)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.run_blocks(self.downsample(x))
        return self.norm(x) if hasattr(self, 'norm') else x
