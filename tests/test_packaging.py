"""Package metadata: setup.py states version ranges, the test environment's exact versions
(requirements/constraints.txt) lie inside them, and the license file matches the metadata."""
import re
import runpy
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List

import pytest
import setuptools
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / 'requirements' / 'constraints.txt'


@pytest.fixture(scope='module')
def setup_kwargs() -> Dict[str, Any]:
    """The keyword arguments setup.py passes to ``setup()``, without running setuptools."""
    captured: Dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(setuptools, 'setup', lambda **kwargs: captured.update(kwargs))
        runpy.run_path(str(REPO / 'setup.py'), run_name='__main__')
    assert captured, 'setup.py did not call setup()'
    return captured


def _requirements(kwargs: Dict[str, Any]) -> List[Requirement]:
    reqs = [Requirement(r) for r in kwargs['install_requires']]
    for extra in kwargs.get('extras_require', {}).values():
        reqs += [Requirement(r) for r in extra]
    return reqs


def _constraints() -> Dict[str, Version]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        name, _, version = line.partition('==')
        assert version, f'constraints line is not an exact pin: {line!r}'
        pins[canonicalize_name(name)] = Version(version)
    return pins


def test_setup_declares_ranges_not_pins(setup_kwargs):
    for req in _requirements(setup_kwargs):
        ops = {spec.operator for spec in req.specifier}
        assert not ops & {'==', '==='}, f'{req} pins an exact version; state a range'
    assert '==' not in setup_kwargs['python_requires']


@pytest.mark.parametrize('name', ['torch', 'mmengine', 'mmcv', 'mmdet', 'mmsegmentation'])
def test_core_dependencies_have_a_lower_bound(setup_kwargs, name):
    req = next(Requirement(r) for r in setup_kwargs['install_requires']
               if canonicalize_name(Requirement(r).name) == name)
    assert any(spec.operator in ('>=', '>') for spec in req.specifier), req


def test_installed_versions_lie_in_the_declared_ranges(setup_kwargs):
    outside = []
    for req in _requirements(setup_kwargs):
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            continue  # an extra that this environment does not install
        if not req.specifier.contains(installed, prereleases=True):
            outside.append(f'{req.name} {installed} not in {req.specifier}')
    assert not outside, outside
    assert SpecifierSet(setup_kwargs['python_requires']).contains(
        '.'.join(map(str, sys.version_info[:3])))


def test_constraints_lie_in_the_declared_ranges(setup_kwargs):
    pins = _constraints()
    for name in ('torch', 'mmengine', 'mmcv', 'mmdet', 'mmsegmentation', 'numpy',
                 'setuptools'):
        assert name in pins, f'{CONSTRAINTS.name} does not pin {name}'
    outside = [f'{req.name}=={pins[canonicalize_name(req.name)]} not in {req.specifier}'
               for req in _requirements(setup_kwargs)
               if canonicalize_name(req.name) in pins
               and not req.specifier.contains(pins[canonicalize_name(req.name)],
                                              prereleases=True)]
    assert not outside, outside


def test_constraints_are_the_installed_versions():
    # `make test` installs exactly these; an environment that drifted from them is not the
    # one the constraints describe.
    drift = []
    for name, pinned in _constraints().items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            drift.append(f'{name} not installed')
            continue
        if Version(installed.public) != pinned:
            drift.append(f'{name} {installed} != {pinned}')
    assert not drift, drift


def test_setup_env_installs_with_the_constraints():
    script = (REPO / 'tools' / 'setup_env.sh').read_text()
    assert re.search(r'PIP=\(.*-c "\$CONSTRAINTS"\)', script)
    assert 'requirements/constraints.txt' in script
    # The stamp must change when the constraints do, or a re-run would skip the new versions.
    stamp = next(line for line in script.splitlines() if line.startswith('stamp_src='))
    assert '$CONSTRAINTS' in stamp


def test_license_file_matches_the_metadata(setup_kwargs):
    assert setup_kwargs['license'] == 'Apache-2.0'
    text = (REPO / 'LICENSE').read_text()
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text
    assert 'END OF TERMS AND CONDITIONS' in text


def test_index_metadata(setup_kwargs):
    classifiers = setup_kwargs['classifiers']
    major_minor = f'{sys.version_info[0]}.{sys.version_info[1]}'
    assert f'Programming Language :: Python :: {major_minor}' in classifiers
    assert setup_kwargs['project_urls'] and setup_kwargs['url']
