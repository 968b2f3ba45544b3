"""The five backbone families (one file per paper)."""
from .base import HybridBackbone
from .cmt import CMT
from .van import VAN

__all__ = ['CMT', 'HybridBackbone', 'VAN']
