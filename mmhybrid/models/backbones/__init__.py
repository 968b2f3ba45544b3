"""The five backbone families (one file per paper)."""
from .base import HybridBackbone
from .cmt import CMT
from .crossformer import CrossFormer
from .transcnn import HATNet, TransCNN
from .uniformer import UniFormer
from .uniformer_light import UniFormerLight
from .van import VAN

__all__ = [
    'CMT', 'CrossFormer', 'HybridBackbone', 'HATNet', 'TransCNN', 'UniFormer', 'UniFormerLight', 'VAN'
]
