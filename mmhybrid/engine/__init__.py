"""Training-time helpers: crash-safe checkpoint writing, exact resume, rank-sync checks."""
from .atomic_backend import ATOMIC_BACKEND, AtomicLocalBackend, atomic_write_bytes
from .hooks import (DeterministicResumeHook, WeightSyncCheckHook, derived_seed,
                    mismatched_parameters, parameter_digests)

__all__ = ['ATOMIC_BACKEND', 'AtomicLocalBackend', 'atomic_write_bytes',
           'DeterministicResumeHook', 'WeightSyncCheckHook', 'derived_seed',
           'mismatched_parameters', 'parameter_digests']
