"""CPU fast paths and training savers, swapped into mmhybrid backbones by one explicit call.

The model files (``mmhybrid.models``) are the reference definitions in plain PyTorch. This
package holds what makes them faster or lighter on a particular kind of machine, applied in
place by:

- :func:`optimize_for_inference`: eval mode, the folds of ``switch_to_deploy()``, and the CPU
  inference modules (oneDNN products, GELU applied as products and convolutions write, short-key
  attention, row bands, chunked CrossFormer blocks, the phase form of VAN's dilated
  convolution);
- :func:`optimize_for_training`: the training savers (attention with a learnable bias that
  recomputes its probabilities in the backward, GELU+BatchNorm storing one map, oneDNN's
  training products, space-to-depth convolutions, the phase form).

It is the only part of mmhybrid that uses PyTorch internals; they are listed in
:mod:`mmhybrid.accel.internals`.
"""
from .optimize import optimize_for_inference, optimize_for_training

__all__ = ['optimize_for_inference', 'optimize_for_training']
