#!/usr/bin/env python
"""Prepares the folder that benchmarks/gpu_check.py takes to a GPU machine without network.

    python benchmarks/prepare_gpu_bundle.py [--out benchmarks/gpu_bundle]
        [--mirror OWNER/NAME=GITDIR ...] [--no-authors] [--no-wheels]

Writes into ``--out`` (an ignored path of the repository, so that it travels with a run):

- ``authors/<owner>+<name>/<commit>/<path>``: the authors' files that
  benchmarks/side_by_side.py compares against, unmodified, read with ``git show`` at their
  pinned commits from a bare clone (``--mirror`` names a git dir instead of cloning);
- ``wheels/``: the packages the GPU machine's Python lacks, for ``pip install --no-index
  --no-deps`` there (:data:`WHEELS`; compiled ones for ``--python-version``, manylinux x86-64),
  and timm 0.4.12, which the authors' files need and which is only unpacked beside them;
- ``data/``: the synthetic shapes data in COCO and ADE20K layout (``mmhybrid.datasets``);
- ``manifest.json``: what is there, with sha256 sums.

``--no-authors`` and ``--no-wheels`` leave those parts out (offline: the test suite prepares a
bundle so, and gpu_check.py then compares mmhybrid's model with itself, marked as a stand-in).
The folder must stay under ``--max-mib`` (64 MiB, what a device run carries).
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _path in (str(REPO), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

# (requirement, compiled): what the GPU machine's image lacks of mmhybrid's runtime, at the
# versions of the project's environment (the image has torch, numpy, scipy, matplotlib, opencv,
# pyyaml, rich, regex, six, tqdm, packaging).
# mmcv-lite is mmcv 2.1.0's Python code without the compiled ops (see mmcv_ops_stand_in.py);
# setuptools < 81 brings pkg_resources, which mmengine's ``mmdet::`` config inheritance needs.
WHEELS = (
    ('mmengine==0.10.7', False), ('mmcv-lite==2.1.0', False), ('mmdet==3.3.0', False),
    ('mmsegmentation==1.2.2', False), ('addict==2.4.0', False), ('yapf==0.43.0', False),
    ('platformdirs==4.14.9', False), ('termcolor==3.3.0', False),
    ('terminaltables==3.1.10', False), ('prettytable==3.19.0', False),
    ('wcwidth==0.9.5', False), ('ftfy==6.3.1', False), ('setuptools==80.10.2', False),
    ('pycocotools==2.0.11', True), ('shapely==2.2.0', True),
)
AUTHORS_WHEEL = 'timm==0.4.12'
PLATFORMS = ('manylinux_2_28_x86_64', 'manylinux_2_27_x86_64', 'manylinux_2_17_x86_64',
             'manylinux2014_x86_64', 'manylinux1_x86_64')
DATA_SPEC = dict(num_train=16, num_val=4, image_size=512, colour_by_class=True, seed=0)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file())


def git_dir(repo: str, mirrors: Dict[str, Path], cache: Path) -> Path:
    """A git dir of ``repo``: the given mirror, or a bare clone in ``cache``."""
    if repo in mirrors:
        return mirrors[repo]
    target = cache / f"{repo.replace('/', '+')}.git"
    if not target.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(['git', 'clone', '--quiet', '--bare', f'https://github.com/{repo}',
                        str(target)], check=True)
    return target


def add_authors(out: Path, mirrors: Dict[str, Path], cache: Path) -> Dict[str, dict]:
    import side_by_side
    files = {}
    for model, info in side_by_side.MODELS.items():
        source = subprocess.run(
            ['git', '--git-dir', str(git_dir(info['repo'], mirrors, cache)), 'show',
             f"{info['commit']}:{info['file']}"], check=True, capture_output=True).stdout
        target = side_by_side.bundled_file(out, model)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source)
        files[model] = dict(file=f"{info['repo']}@{info['commit']}:{info['file']}",
                            path=str(target.relative_to(out)), sha256=sha256(target))
    return files


def download(requirement: str, compiled: bool, dest: Path, python_version: str) -> None:
    cmd = [sys.executable, '-m', 'pip', 'download', '--quiet', '--no-deps', '-d', str(dest),
           requirement]
    if compiled:
        cmd += ['--only-binary=:all:', '--python-version', python_version, '--implementation',
                'cp']
        for platform in PLATFORMS:
            cmd += ['--platform', platform]
    subprocess.run(cmd, check=True)


def add_wheels(out: Path, python_version: str) -> List[dict]:
    dest = out / 'wheels'
    dest.mkdir(parents=True, exist_ok=True)
    for requirement, compiled in WHEELS + ((AUTHORS_WHEEL, False), ):
        download(requirement, compiled, dest, python_version)
    return [dict(file=p.name, sha256=sha256(p)) for p in sorted(dest.glob('*.whl'))]


def add_data(out: Path, spec: Dict[str, Any]) -> dict:
    from mmhybrid.datasets import ShapesSpec, generate_shapes
    generate_shapes(out / 'data', spec=ShapesSpec(**spec))
    return dict(spec, layouts=['coco', 'ade20k'])


def prepare(out: Path, mirrors: Dict[str, Path], authors: bool = True, wheels: bool = True,
            python_version: str = '3.12', max_mib: float = 64, cache: Optional[Path] = None,
            data_spec: Optional[Dict[str, Any]] = None) -> dict:
    """Writes the bundle into ``out`` (replacing an earlier one there); returns its manifest.
    ``data_spec``: the shapes data's :class:`~mmhybrid.datasets.ShapesSpec` fields (default
    :data:`DATA_SPEC`).

    Raises:
        ValueError: ``out`` holds something that is not a bundle, or the bundle is too large.
    """
    if out.exists() and any(out.iterdir()) and not (out / 'manifest.json').is_file():
        raise ValueError(f'{out} exists and is not a bundle (no manifest.json): not replacing it')
    staging = Path(tempfile.mkdtemp(prefix='.bundle-', dir=out.parent if out.parent.is_dir()
                                    else None))
    try:
        manifest = dict(format=1, python_version=python_version)
        manifest['authors'] = add_authors(staging, mirrors, cache or Path(
            os.path.expanduser('~/.cache/mmhybrid/mirrors'))) if authors else {}
        manifest['wheels'] = add_wheels(staging, python_version) if wheels else []
        manifest['data'] = add_data(staging, data_spec or DATA_SPEC)
        size = folder_bytes(staging)
        manifest['bytes'] = size
        manifest['summary'] = (f"{len(manifest['authors'])} authors' files, "
                               f"{len(manifest['wheels'])} wheels, shapes data; "
                               f"{size / 2**20:.1f} MiB")
        (staging / 'manifest.json').write_text(json.dumps(manifest, indent=1) + '\n')
        if size > max_mib * 2**20:
            raise ValueError(f'the bundle is {size / 2**20:.1f} MiB, over {max_mib} MiB')
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=HERE / 'gpu_bundle')
    parser.add_argument('--mirror', action='append', default=[], metavar='OWNER/NAME=GITDIR',
                        help='a git dir of the authors\' repository (default: a bare clone)')
    parser.add_argument('--no-authors', action='store_true', help='leave the authors\' files out')
    parser.add_argument('--no-wheels', action='store_true', help='leave the wheels out')
    parser.add_argument('--python-version', default='3.12',
                        help='of the GPU machine, for the compiled wheels (default 3.12)')
    parser.add_argument('--max-mib', type=float, default=64)
    args = parser.parse_args(argv)
    mirrors = {}
    for item in args.mirror:
        repo, _, path = item.partition('=')
        if '/' not in repo or not path or not Path(path).is_dir():
            parser.error(f'--mirror wants OWNER/NAME=GITDIR with an existing GITDIR, got {item!r}')
        mirrors[repo] = Path(path)
    try:
        manifest = prepare(args.out.resolve(), mirrors, authors=not args.no_authors,
                           wheels=not args.no_wheels, python_version=args.python_version,
                           max_mib=args.max_mib)
    except (ValueError, subprocess.CalledProcessError) as error:
        raise SystemExit(f'prepare_gpu_bundle: {error}')
    print(f"{args.out}: {manifest['summary']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
