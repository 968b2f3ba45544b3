"""The deterministic rule that made the parity weights and inputs (tests/data/parity/README.md).

Every floating tensor of a parity checkpoint, and every parity input, is a pure function of a
text and a shape: ``fill(key, shape)`` and ``make_input(shape, tag)`` rebuild them bit for bit,
so the repository stores only what cannot be rebuilt (key names, shapes, the few tensors the
rule keeps, and the expected outputs).

The integer stream is vectorised with numpy ``uint64`` arrays (array arithmetic wraps modulo
2**64 without warnings; the one scalar product is done with Python integers). ``log`` and
``cos`` are the C library's, through Python's ``math`` module, applied element-wise: numpy's
and torch's vectorised float64 versions are not correctly rounded and may depend on the CPU's
SIMD level (here numpy's ``log`` differs from libm in the last bit of ~0.35% of the values,
torch's ``cos`` in ~0.2%). All three give the same float32 tensors for the ten parity files
(rounding to float32 absorbs those last-bit differences), but a last-bit difference can flip a
float32 rounding in general, so the portable libm formulation is the one kept. Rebuilding all
ten files takes about 2 s.
"""
import hashlib
import math
import re
import zlib
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

SALT = 'mmhybrid-parity-v1'
_MIX_SEED = np.uint64(0xD1B54A32D192ED03)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
# Keys whose tensors the rule keeps as the official model builds them (rule 1).
KEPT_LEAVES = ('num_batches_tracked', 'relative_position_index', 'biases', 'attn_mask')
# The last layer of a residual branch gets gain 0.1 (rule 7).
_RESIDUAL_OUT = re.compile(r'(^|\.)(attn\.proj|attn\.proj_2|mlp\.fc2|mlp\.conv2\.0|conv\.conv3\.0|'
                           r'conv2|pos_embed|blocks_[a-d]\.\d+\.proj|mlp\.proj)$')

_vlog = np.frompyfunc(math.log, 1, 1)
_vcos = np.frompyfunc(math.cos, 1, 1)


def seed(text: str) -> int:
    return zlib.crc32((SALT + '|' + text).encode('utf-8')) & 0xFFFFFFFF


def shape_text(shape: Sequence[int]) -> str:
    return 'x'.join(str(int(d)) for d in shape)


def uniforms(s: int, count: int) -> np.ndarray:
    """``count`` float64 uniforms in (0, 1) of the splitmix-like stream of seed ``s``."""
    i = np.arange(1, count + 1, dtype=np.uint64)
    # The seed term is a scalar: computed with Python integers (numpy scalars warn on wrap).
    z = np.uint64(s * int(_MIX_SEED) % 2**64) + i * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    z ^= z >> np.uint64(31)
    # (z >> 11) < 2**53: exact in float64, as are + 0.5 and the power-of-two division.
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53


def normal(text: str, shape: Sequence[int]) -> torch.Tensor:
    """Box-Muller normals (float64, rounded to float32) of ``text`` and ``shape``."""
    n = math.prod(shape)
    u = uniforms(seed(text + '|' + shape_text(shape)), 2 * n)
    a, b = u[0::2], u[1::2]
    radius = np.sqrt(-2.0 * _vlog(a).astype(np.float64))
    values = radius * _vcos(2.0 * math.pi * b).astype(np.float64)
    return torch.from_numpy(values.astype(np.float32).reshape(tuple(shape)))


def uniform(text: str, shape: Sequence[int], lo: float, hi: float) -> torch.Tensor:
    n = math.prod(shape)
    u = uniforms(seed(text + '|' + shape_text(shape)), n)
    return torch.from_numpy((lo + (hi - lo) * u).astype(np.float32).reshape(tuple(shape)))


def _scaled(factor: float, values: torch.Tensor) -> torch.Tensor:
    # The factor is computed in float64, then applied in float32 arithmetic.
    return values * torch.tensor(factor, dtype=torch.float32)


def fill(key: str, shape: Sequence[int],
         dtype: torch.dtype = torch.float32) -> Optional[torch.Tensor]:
    """The tensor of official key ``key``; ``None`` when the rule keeps the official tensor."""
    shape = tuple(int(d) for d in shape)
    leaf = key.rsplit('.', 1)[-1]
    if leaf in KEPT_LEAVES:
        return None
    if leaf == 'running_mean':
        out = _scaled(0.1, normal(key, shape))
    elif leaf == 'running_var':
        out = uniform(key, shape, 0.5, 1.5)
    elif leaf.startswith('relative_pos') or leaf == 'relative_position_bias_table':
        out = _scaled(0.5, normal(key, shape))
    elif leaf.startswith(('layer_scale', 'gamma')):
        out = _scaled(0.1, 1 + _scaled(0.1, normal(key, shape)))
    elif leaf == 'weight' and len(shape) <= 1:
        out = 1 + _scaled(0.1, normal(key, shape))
    elif leaf == 'weight':
        gain = 0.1 if _RESIDUAL_OUT.search(key[:-len('.weight')]) else 1.0
        out = _scaled(gain / math.sqrt(math.prod(shape[1:])), normal(key, shape))
    elif leaf == 'bias':
        out = _scaled(0.1, normal(key, shape))
    else:
        out = _scaled(0.5, normal(key, shape))
    return out.to(dtype)


def checkpoint_fingerprint(state_dict) -> str:
    """The parity files' ``meta.checkpoint_fingerprint``: sha256 over ``key|dtype|shape|`` and
    the raw bytes of every tensor, keys sorted."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        value = state_dict[key]
        digest.update(f'{key}|{value.dtype}|{list(value.shape)}|'.encode())
        digest.update(value.contiguous().numpy().tobytes())
    return digest.hexdigest()


def tensor_sha256(value: torch.Tensor) -> str:
    return hashlib.sha256(value.contiguous().numpy().tobytes()).hexdigest()


def make_input(shape: Sequence[int], tag: str,
               pad: Optional[Tuple[int, int, int, int]] = None) -> torch.Tensor:
    """A parity input; ``pad`` (F.pad order) zero-pads it as a detector's preprocessor does."""
    x = normal('input:' + tag, shape)
    if pad:
        x = torch.nn.functional.pad(x, tuple(pad))
    return x
