"""The model files are the reference definitions: plain PyTorch, no global switches, no torch
internals. CPU fast paths live in mmhybrid/accel, which lists its torch internals in
mmhybrid/accel/internals.py."""
import ast
import re
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[1] / 'mmhybrid' / 'models'
ACCEL = MODELS.parent / 'accel'
MODEL_FILES = sorted(MODELS.rglob('*.py'))
BACKBONE_FILES = sorted((MODELS / 'backbones').glob('*.py'))

# Queries of torch's global state (grad mode, tracing, compiling, exporting, autocast, dispatch
# modes, hooks): none in a backbone file.
GLOBAL_STATE = re.compile(
    r'is_grad_enabled|is_inference_mode_enabled|torch\.compiler\.|is_tracing|is_scripting|'
    r'is_autocast_enabled|get_autocast|_python_dispatch|_global_forward|_forward_hooks|'
    r'_forward_pre_hooks|backends\.mkldnn\.enabled')
# A torch name with an underscore-prefixed component (torch._C, torch.ops.aten._x,
# torch.nn.modules.batchnorm._BatchNorm, ...), written out or imported.
PRIVATE_TORCH = re.compile(r'\btorch(\.\w+)*\._\w|\bfrom torch[\w.]* import[^\n]*\b_[A-Za-z]'
                           r'|\bfrom torch(\.\w+)*\._')


def _code(path: Path) -> str:
    """The file's code without its docstrings and comments."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        body = getattr(node, 'body', None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body[0] = ast.Pass()
    return ast.unparse(tree)


@pytest.mark.parametrize('path', BACKBONE_FILES, ids=lambda p: p.name)
def test_backbone_files_query_no_global_state(path):
    assert not GLOBAL_STATE.findall(_code(path))


@pytest.mark.parametrize('path', MODEL_FILES, ids=lambda p: str(p.relative_to(MODELS)))
def test_model_files_use_no_torch_internals(path):
    assert not PRIVATE_TORCH.findall(_code(path))


@pytest.mark.parametrize('path', MODEL_FILES, ids=lambda p: str(p.relative_to(MODELS)))
def test_model_files_have_no_module_switches(path):
    # A module-level name bound to a bool (or rebound anywhere with ``global``) would be a
    # switch every model in the process shares.
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Constant):
            assert not isinstance(node.value.value, bool), ast.unparse(node)
    assert not any(isinstance(node, ast.Global) for node in ast.walk(tree))


def test_model_files_do_not_import_the_accelerator():
    for path in MODEL_FILES:
        assert 'accel' not in _code(path), path


def test_the_patterns_find_what_they_look_for():
    assert GLOBAL_STATE.search('if torch.is_grad_enabled():')
    assert GLOBAL_STATE.search('torch.compiler.is_compiling()')
    for private in ('torch.ops.mkldnn._linear_pointwise', 'torch._C._foo',
                    'from torch.nn.modules.batchnorm import _BatchNorm',
                    'from torch._inductor import config', 'nn.modules.module._global_forward_hooks'):
        assert PRIVATE_TORCH.search(private) or GLOBAL_STATE.search(private), private
    assert not PRIVATE_TORCH.search('torch.nn.functional.gelu(x)')
    # The accelerator's internals are where the real ones are.
    assert PRIVATE_TORCH.search((ACCEL / 'internals.py').read_text())
