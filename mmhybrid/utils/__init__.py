"""Utilities: complexity counting."""
from .complexity import count_macs, count_params

__all__ = ['count_macs', 'count_params']
