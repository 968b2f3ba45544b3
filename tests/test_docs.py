"""The documentation speaks to users: it names only files, sections and tests that exist, and
nothing in the repository speaks of how it was made.

What is checked:

- every relative Markdown link (``[text](path#anchor)``) in README.md and the Markdown files of
  the repository points to a file or folder that exists, and its anchor to a heading there;
- every mention of a file of this repository (a ``.py``, ``.md`` or ``.sh`` path that starts
  with one of its top-level folders, ``./`` or ``../``, and every ``test_*.py`` name) in the
  Markdown files, in the docstrings and comments of the Python files and in the comments of the
  configs and scripts names a file that exists; ``path.py::name`` also names a function or class
  defined in it. A file of the authors' is written ``owner/repo@commit:path`` (or
  ``owner/repo:path``) and is not checked;
- no word of the way the code was developed (work sessions, our own issue numbers, the machines
  it was developed on) in README.md, docs/, mmhybrid/, tools/, tests/, benchmarks/, configs/.
"""
import io
import re
import tokenize
from pathlib import Path
from typing import Iterator, List, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
SCANNED = ['README.md', 'docs', 'mmhybrid', 'tools', 'tests', 'benchmarks', 'configs']
TEXT_SUFFIXES = {'.py', '.md', '.sh', '.txt', '.json', '.cfg', '.toml', '.yml', '.yaml'}

# Words of the development process. Written in two pieces so that this file does not match them.
PROCESS_WORDS = [
    re.compile(r'\bsess' r'ions?\s+\d+', re.IGNORECASE),
    # Our own issue numbers; an upstream reference (owner/repo#123) does not match.
    re.compile(r'\biss' r'ues?\s+#?\d+', re.IGNORECASE),
    re.compile(r'\ble' r'nt\b', re.IGNORECASE),
    re.compile(r'\bthis ta' r'sk\b', re.IGNORECASE),
    re.compile(r"\bthis project's mach" r'ines\b', re.IGNORECASE),
]

# Files the package does not have; a user cannot follow a pointer to them.
MISSING_DOCS = re.compile(r'\b(DES' r'IGN|REFER' r'ENCE)\.md\b'
                          r'|(?<![\w-])sha' r'red/(parity|wheels)\b|\.\./sha' r'red\b')

AUTHORS_FILE = re.compile(r'(?<![\w./-])[\w.-]+/[\w.-]+(?:@[\w.-]+)?:[\w./-]*[\w/]')
FILE_MENTION = re.compile(r'(?<![\w./@:*{}$<-])((?:\.\.?/)*(?:[\w.-]+/)*[\w-]+\.(?:py|md|sh))'
                          r'(::\w+)?(?![\w/-])')
OUR_ROOTS = {'mmhybrid', 'tools', 'tests', 'docs', 'configs', 'benchmarks', 'requirements'}
MD_LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')


def _files() -> List[Path]:
    out = []
    for name in SCANNED:
        root = REPO / name
        paths = [root] if root.is_file() else sorted(root.rglob('*'))
        out += [p for p in paths if p.is_file() and p.suffix in TEXT_SUFFIXES
                and '__pycache__' not in p.parts]
    return out


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _python_prose(path: Path) -> Iterator[Tuple[int, str]]:
    """(line, text) of the comments and docstrings of a Python file."""
    source = path.read_text(encoding='utf-8')
    previous = tokenize.NEWLINE
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string
        elif tok.type == tokenize.STRING and previous in (tokenize.NEWLINE, tokenize.NL,
                                                          tokenize.INDENT, tokenize.DEDENT):
            yield tok.start[0], tok.string  # a string statement: a docstring
        if tok.type not in (tokenize.COMMENT, tokenize.NL):
            previous = tok.type


def _prose(path: Path) -> Iterator[Tuple[int, str]]:
    if path.suffix == '.py':
        yield from _python_prose(path)
    elif path.suffix in ('.md', '.sh', '.txt'):
        for i, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
            if path.suffix != '.sh' or line.lstrip().startswith('#'):
                yield i, line


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def _anchors(md: Path) -> Set[str]:
    anchors, in_code = set(), False
    for line in md.read_text(encoding='utf-8').splitlines():
        if line.startswith('```'):
            in_code = not in_code
        elif not in_code and line.startswith('#'):
            anchors.add(_slug(line.lstrip('#')))
    return anchors


def _ours(mention: str) -> bool:
    """Whether a mention names a file of this repository (not of the authors or of mmdet)."""
    if mention.startswith(('./', '../')):
        return True
    if '/' not in mention:
        return mention.startswith('test_') and mention.endswith('.py')
    return mention.split('/', 1)[0] in OUR_ROOTS


def _resolve(mention: str, source: Path) -> List[Path]:
    """The files a mention may mean: relative to its file or to the repository root; a bare
    ``test_*.py`` name, the file of that name under tests/."""
    if '/' in mention:
        return [p for p in ((source.parent / mention), (REPO / mention)) if p.exists()]
    return [p for p in (REPO / 'tests').rglob(mention)]


def _defines(path: Path, name: str) -> bool:
    return re.search(rf'^\s*(?:async\s+)?(?:def|class)\s+{name}\b', path.read_text(),
                     re.MULTILINE) is not None


FILES = _files()


def test_no_words_of_how_it_was_made():
    hits = []
    for path in FILES:
        text = path.read_text(encoding='utf-8', errors='replace')
        for i, line in enumerate(text.splitlines(), 1):
            for pattern in PROCESS_WORDS:
                match = pattern.search(line)
                if match:
                    hits.append(f'{_rel(path)}:{i}: {match.group(0)!r}')
    assert not hits, 'the repository speaks of how it was made:\n' + '\n'.join(hits)


def test_no_pointer_to_files_the_repository_does_not_have():
    hits = [f'{_rel(path)}:{i}: {m.group(0)}' for path in FILES
            for i, text in _prose(path) for m in MISSING_DOCS.finditer(text)]
    assert not hits, 'pointers to files a user does not have:\n' + '\n'.join(hits)


def test_markdown_links_point_to_files_and_headings_that_exist():
    broken = []
    for md in [p for p in FILES if p.suffix == '.md']:
        in_code = False
        for i, line in enumerate(md.read_text(encoding='utf-8').splitlines(), 1):
            if line.startswith('```'):
                in_code = not in_code
            if in_code:
                continue
            for target in MD_LINK.findall(line):
                if re.match(r'[a-z]+:', target):
                    continue  # http(s), mailto
                path_part, _, anchor = target.partition('#')
                dest = (md.parent / path_part) if path_part else md
                if not dest.exists():
                    broken.append(f'{_rel(md)}:{i}: {target} (no such file)')
                elif anchor and dest.suffix == '.md' and anchor not in _anchors(dest):
                    broken.append(f'{_rel(md)}:{i}: {target} (no such heading)')
    assert not broken, '\n'.join(broken)


def test_file_mentions_name_files_that_exist():
    broken = []
    for path in FILES:
        for line_no, text in _prose(path):
            text = AUTHORS_FILE.sub('', text)
            text = re.sub(r'https?://\S+', '', text)
            for mention, member in FILE_MENTION.findall(text):
                if not _ours(mention):
                    continue
                found = _resolve(mention, path)
                if not found:
                    broken.append(f'{_rel(path)}:{line_no}: {mention}')
                elif member and not any(_defines(p, member[2:]) for p in found):
                    broken.append(f'{_rel(path)}:{line_no}: {mention}{member} (no such name)')
    assert not broken, 'mentions of files or tests that do not exist:\n' + '\n'.join(
        sorted(set(broken)))


@pytest.mark.parametrize('line, expected', [
    ('see sess' 'ion 12 for details', True),
    ('iss' 'ue 17 items 2-4', True),
    ('no GPU was le' 'nt to us', True),
    ('on this ta' 'sk', True),
    ("on this project's mach" 'ines', True),
    ('open-mmlab/mmdetection#1234 describes it', False),
    ('a silent, partial load', False),
    ('the sessions of the authors', False),
])
def test_the_process_words_scan(line, expected):
    assert any(p.search(line) for p in PROCESS_WORDS) is expected


@pytest.mark.parametrize('text, mentions', [
    ('see `tests/test_parity.py` and base.py', ['tests/test_parity.py', 'base.py']),
    ('`configs/det/maskrcnn_*_1x.py`, ../_base_/det/{family}_1x.py', []),
    ('cheerss/CrossFormer@79520107:models/crossformer_backbone_det.py', []),
    ('Sense-X/UniFormer:object_detection/README.md', []),
    ('tests/test_e2e.py::test_x', ['tests/test_e2e.py']),
])
def test_the_mention_scan(text, mentions):
    text = AUTHORS_FILE.sub('', text)
    assert [m for m, _ in FILE_MENTION.findall(text)] == mentions


@pytest.mark.parametrize('mention, ours', [
    ('tests/test_parity.py', True), ('../_base_/det/maskrcnn.py', True), ('test_van.py', True),
    ('detection/configs/mask_rcnn_crossformer_b_fpn_1x_coco.py', False), ('cmt.py', False),
])
def test_which_mentions_are_ours(mention, ours):
    assert _ours(mention) is ours


def test_a_broken_mention_is_found(tmp_path):
    assert not _resolve('tests/no_such_test.py', REPO / 'README.md')
    assert not _resolve('test_no_such_thing.py', REPO / 'README.md')
    assert _resolve('../_base_/det/maskrcnn.py', REPO / 'configs' / 'det' / 'x.py')
    assert not _defines(REPO / 'tests' / 'test_docs.py', 'test_no_such_test')
    assert _defines(REPO / 'tests' / 'test_docs.py', 'test_a_broken_mention_is_found')


def test_readme_config_snippet_builds(tmp_path):
    """The README's "use a backbone in your own config" snippet is a working mmdet config: it
    builds, and the neck's widths are the backbone's out_channels."""
    from mmengine.config import Config
    from mmdet.registry import MODELS as DET_MODELS
    from mmdet.utils import register_all_modules

    readme = (REPO / 'README.md').read_text(encoding='utf-8')
    snippets = re.findall(r'```python\n(.*?)```', readme, re.DOTALL)
    assert snippets, 'the README has no python snippet'
    path = tmp_path / 'snippet_cfg.py'
    path.write_text(snippets[0])
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports['imports'] == ['mmhybrid']
    cfg.model.backbone.init_cfg = None  # the ImageNet file is not here
    register_all_modules()
    import mmhybrid  # noqa: F401  (what custom_imports does)
    model = DET_MODELS.build(cfg.model)
    assert type(model.backbone).__module__.startswith('mmhybrid.')
    assert list(model.backbone.out_channels) == list(cfg.model.neck.in_channels)


@pytest.mark.parametrize('line, expected', [
    ('see DES' 'IGN.md §2', True),
    ('(REFER' 'ENCE.md §5)', True),
    ('python extract.py ../sha' 'red/parity', True),
    ('the rule of sha' 'red/parity/README.md', True),
    ('shared by the blocks of a stage', False),
    ('tests/data/parity/README.md', False),
])
def test_the_missing_files_scan(line, expected):
    assert bool(MISSING_DOCS.search(line)) is expected
