"""Layers shared by two or more backbones (one concept per file)."""
from .checkpoint import maybe_checkpoint
from .norm import LayerNorm2d

__all__ = ['LayerNorm2d', 'maybe_checkpoint']
