"""The five backbone families (one file per paper)."""
from .base import HybridBackbone
from .van import VAN

__all__ = ['HybridBackbone', 'VAN']
