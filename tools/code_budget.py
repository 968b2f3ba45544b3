#!/usr/bin/env python
"""How much code the model definitions are, and how much of it one forward runs.

    python tools/code_budget.py [--json FILE]

Reports (and with ``--check`` fails when over budget):

- the code lines of ``mmhybrid/models/backbones/`` and ``mmhybrid/models/layers/``: lines that
  hold code, not counting blank lines, comments and docstrings (``mmhybrid/accel`` is not a
  model definition and is not counted);
- the Python lines executed inside ``mmhybrid/`` for one eval forward (``torch.no_grad()``,
  after one warm-up forward) of the plain CMT-Ti at 160x160, VAN-B0 at 224x224 and CrossFormer-T
  at 224x224, counted with ``sys.settrace`` (a line run twice counts twice).

The budgets: at most :data:`CODE_LINES_BUDGET` code lines, and for each model at most twice the
lines the authors' code runs for the same forward (:data:`AUTHORS_LINES`, counted the same way
on huawei-noah/Efficient-AI-Backbones@f90e129b:cmt_pytorch/cmt.py,
Visual-Attention-Network/VAN-Classification@e19779b5:models/van.py and
cheerss/CrossFormer@crossformer branch's models/crossformer.py).
"""
import argparse
import io
import json
import os.path as osp
import sys
import tokenize
from typing import Dict, List, Optional

_REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO not in sys.path:  # a checkout's tools run its own package, pip-installed or not
    sys.path.insert(0, _REPO)

MODEL_DIRS = ('mmhybrid/models/backbones', 'mmhybrid/models/layers')
# 80% of the 2,680 code lines the two folders held before the CPU fast paths moved out.
CODE_LINES_BUDGET = 2144
# Lines the authors' code runs for the same eval forward.
AUTHORS_LINES = {'cmt-ti@160': 600, 'van-b0@224': 399, 'crossformer-t@224': 886}
MODELS = {'cmt-ti@160': ('CMT', 'tiny', 160), 'van-b0@224': ('VAN', 'b0', 224),
          'crossformer-t@224': ('CrossFormer', 'tiny', 224)}


def code_lines(path: str) -> int:
    """Lines of ``path`` holding code: not blank, not only a comment, not a docstring."""
    with open(path, 'rb') as f:
        source = f.read()
    lines = set()
    previous = tokenize.NEWLINE
    for token in tokenize.tokenize(io.BytesIO(source).readline):
        kind = token.type
        if kind in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                    tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER):
            if kind == tokenize.NEWLINE:
                previous = kind
            continue
        # A string that starts a logical line on its own is a docstring (or a bare string).
        if kind == tokenize.STRING and previous in (tokenize.NEWLINE, tokenize.INDENT,
                                                     tokenize.DEDENT):
            previous = tokenize.STRING
            continue
        previous = kind
        lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines)


def model_code_lines(root: str = _REPO) -> Dict[str, int]:
    """Code lines per file of :data:`MODEL_DIRS`."""
    import glob
    counts = {}
    for folder in MODEL_DIRS:
        for path in sorted(glob.glob(osp.join(root, folder, '*.py'))):
            counts[osp.relpath(path, root)] = code_lines(path)
    return counts


def executed_lines(name: str) -> int:
    """Python lines executed inside ``mmhybrid/`` for one eval forward of model ``name``."""
    import torch
    from mmhybrid.registry import MODELS as REGISTRY
    family, arch, size = MODELS[name]
    torch.manual_seed(0)
    model = REGISTRY.build(dict(type=f'mmhybrid.{family}', arch=arch)).eval()
    x = torch.randn(1, 3, size, size)
    package = osp.join(_REPO, 'mmhybrid') + osp.sep
    count = 0

    def trace(frame, event, arg):
        nonlocal count
        if not frame.f_code.co_filename.startswith(package):
            return None
        if event == 'line':
            count += 1
        return trace

    with torch.no_grad():
        model(x)  # warm-up: lazy imports and caches
        sys.settrace(trace)
        try:
            model(x)
        finally:
            sys.settrace(None)
    return count


def report(check: bool, json_path: Optional[str]) -> int:
    files = model_code_lines()
    total = sum(files.values())
    lines = {name: executed_lines(name) for name in MODELS}
    print(f'code lines of {" + ".join(MODEL_DIRS)}: {total} (budget {CODE_LINES_BUDGET})')
    failures: List[str] = []
    if total > CODE_LINES_BUDGET:
        failures.append(f'{total} code lines > {CODE_LINES_BUDGET}')
    for name, count in lines.items():
        budget = 2 * AUTHORS_LINES[name]
        print(f'lines executed, one eval forward of {name}: {count} (authors '
              f'{AUTHORS_LINES[name]}, budget {budget})')
        if count > budget:
            failures.append(f'{name}: {count} lines executed > {budget}')
    if json_path:
        with open(json_path, 'w') as f:
            json.dump(dict(code_lines=total, files=files, executed_lines=lines,
                           authors_lines=AUTHORS_LINES), f, indent=1)
    if check and failures:
        print('over budget: ' + '; '.join(failures), file=sys.stderr)
        return 1
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--check', action='store_true', help='exit 1 when over budget')
    parser.add_argument('--json', help='write the counts here')
    args = parser.parse_args(argv)
    return report(args.check, args.json)


if __name__ == '__main__':
    sys.exit(main())
