"""Extracts from the authors' parity files what the parity rule cannot rebuild.

    python tests/data/parity/extract.py FOLDER

FOLDER holds the authors' parity files (tests/data/parity/README.md says what they hold and how
they were made). For each ``<case>.pth`` there it writes ``tests/data/parity/<case>.pth``, a plain
``torch.load(weights_only=True)`` dict:

- ``meta``: the file's meta, unchanged (tolerances, official file and commit, fingerprints...);
- ``checkpoint_spec`` (files that hold a checkpoint): ``wrapper`` (``'model'``/``'state_dict'``),
  ``keys`` (ordered ``[key, shape, dtype]`` of the official state dict), ``kept`` (the tensors
  the rule keeps as the official model builds them: integer buffers, CrossFormer's geometry
  buffers), ``sha256`` (of the bytes of every tensor the rule rebuilds);
- ``input_spec``: ``shape`` and ``tag`` of ``make_input``, the detector padding ``pad`` (or
  ``None``), the ``sha256`` of the stored input;
- the expected outputs as stored (``stages``, ``stages_iclr``, ``logits``), float32.

The CrossFormer++ files (``crossformerpp_small_reduced*.pth``) are not among the authors' parity files:
``make_crossformerpp.py`` (next to this script) runs the authors' code into a folder of the same
format, which this script then extracts.

Nothing is written unless the rule (tests/parity_rule.py) rebuilds every checkpoint tensor and
every input of every file bit for bit; the output is byte-identical from run to run.
"""
import argparse
import hashlib
import io
import re
import sys
from collections import OrderedDict
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for parity_rule

import parity_rule  # noqa: E402

_INPUT = re.compile(r"make_input\(\((\d+),\s*(\d+),\s*(\d+),\s*(\d+)\),\s*'([^']+)'\)")
OUTPUT_KEYS = ('stages', 'stages_iclr', 'logits')


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a.dtype == b.dtype and a.shape == b.shape
            and a.contiguous().numpy().tobytes() == b.contiguous().numpy().tobytes())


def checkpoint_spec(name: str, checkpoint: dict) -> dict:
    (wrapper, state_dict), = checkpoint.items()
    keys, kept, digests = [], OrderedDict(), OrderedDict()
    for key, value in state_dict.items():
        keys.append([key, list(value.shape), str(value.dtype).replace('torch.', '')])
        rebuilt = (parity_rule.fill(key, value.shape, value.dtype)
                   if value.is_floating_point() else None)
        if rebuilt is None:
            kept[key] = value.clone()
            continue
        if not same_bits(rebuilt, value):
            raise SystemExit(f'{name}: the rule does not rebuild {key} bit for bit')
        digests[key] = parity_rule.tensor_sha256(value)
    return dict(wrapper=wrapper, keys=keys, kept=kept, sha256=digests)


def input_spec(name: str, meta: dict, inputs: torch.Tensor) -> dict:
    match = _INPUT.search(meta['input'])
    if match is None:
        raise SystemExit(f'{name}: no make_input((shape), tag) in meta.input')
    shape = [int(d) for d in match.groups()[:4]]
    tag = match.group(5)
    height, width = inputs.shape[-2:]
    pad = None
    if [height, width] != shape[2:]:  # a detector's bottom/right zero padding
        pad = [0, width - shape[3], 0, height - shape[2]]
    if not same_bits(parity_rule.make_input(shape, tag, pad), inputs):
        raise SystemExit(f'{name}: the rule does not rebuild the inputs bit for bit')
    return dict(shape=shape, tag=tag, pad=pad, sha256=parity_rule.tensor_sha256(inputs))


def extract(path: Path) -> dict:
    data = torch.load(path, map_location='cpu', weights_only=True)
    name = path.stem
    out = dict(meta=data['meta'])
    if 'checkpoint' in data:
        out['checkpoint_spec'] = checkpoint_spec(name, data['checkpoint'])
        (state_dict, ) = data['checkpoint'].values()
        if parity_rule.checkpoint_fingerprint(state_dict) != data['meta']['checkpoint_fingerprint']:
            raise SystemExit(f'{name}: checkpoint fingerprint differs from meta')
    out['input_spec'] = input_spec(name, data['meta'], data['inputs'])
    for key in OUTPUT_KEYS:
        if key in data:
            value = data[key]
            tensors = value if isinstance(value, list) else [value]
            if any(t.dtype != torch.float32 for t in tensors):
                raise SystemExit(f'{name}: {key} is not float32')
            out[key] = [t.clone() for t in value] if isinstance(value, list) else value.clone()
    unknown = set(data) - {'meta', 'checkpoint', 'inputs', *OUTPUT_KEYS}
    if unknown:
        raise SystemExit(f'{name}: keys this script does not know how to keep: {sorted(unknown)}')
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('shared', type=Path, help='folder of the authors\' parity files')
    parser.add_argument('--out', type=Path, default=HERE)
    parser.add_argument('--check', action='store_true',
                        help='write nothing; fail when a stored file differs from the extraction')
    args = parser.parse_args()
    paths = sorted(args.shared.glob('*.pth'))
    if not paths:
        raise SystemExit(f'no .pth files in {args.shared}')
    stale = []
    for path in paths:
        buffer = io.BytesIO()
        torch.save(extract(path), buffer)
        data = buffer.getvalue()
        dst = args.out / path.name
        if args.check:
            if not dst.is_file() or dst.read_bytes() != data:
                stale.append(dst.name)
            continue
        dst.write_bytes(data)
        print(f'{dst.name}: {len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}')
    if stale:
        raise SystemExit(f'stored files differ from the extraction: {stale}')
    if args.check:
        print(f'{len(paths)} files: the rule rebuilds every weight and input bit for bit, '
              f'and the stored files are up to date')


if __name__ == '__main__':
    main()
