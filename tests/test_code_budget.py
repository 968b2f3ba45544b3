"""tools/code_budget.py: the model definitions stay small, and so does what one forward runs."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tools'))

import code_budget  # noqa: E402


def test_code_lines_skip_comments_blank_lines_and_docstrings(tmp_path):
    source = tmp_path / 'm.py'
    source.write_text('"""Module docstring\nover two lines."""\n# a comment\n\nimport os\n\n\n'
                      'def f(x):\n    """Docstring."""\n    y = (x +\n         1)  # why\n'
                      '    return y\n')
    assert code_budget.code_lines(str(source)) == 5  # import, def, two lines of y, return


def test_the_model_definitions_are_within_budget(tmp_path):
    out = tmp_path / 'budget.json'
    assert code_budget.main(['--check', '--json', str(out)]) == 0
    assert out.is_file()
