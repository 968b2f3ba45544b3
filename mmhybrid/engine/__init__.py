"""Training-time helpers: crash-safe checkpoint writing."""
from .atomic_backend import ATOMIC_BACKEND, AtomicLocalBackend, atomic_write_bytes

__all__ = ['ATOMIC_BACKEND', 'AtomicLocalBackend', 'atomic_write_bytes']
