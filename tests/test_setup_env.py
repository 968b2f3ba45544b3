"""tools/setup_env.sh: finds the cached mmcv wheel wherever else it also lies, and never dies
silently. Fast: nothing is installed (``--find-mmcv-wheel`` only looks; the failing set-up runs
with a stand-in venv Python that fails at once)."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / 'tools' / 'setup_env.sh'
PYTAG = f'cp{sys.version_info[0]}{sys.version_info[1]}'
WHEEL = f'mmcv-2.1.0-{PYTAG}-{PYTAG}-linux_x86_64.whl'


def _setup_env(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHON=sys.executable, VENV=str(tmp_path / 'no-venv'),
                    MMHYBRID_WHEEL_CACHE=str(tmp_path / 'cache'),
                    MMHYBRID_SHARED_WHEELS=str(tmp_path / 'shared'))
    full_env.update(env)
    return subprocess.run(['bash', str(SCRIPT), *args], env=full_env, capture_output=True,
                          text=True, timeout=60)


def _wheel(folder: Path, name: str = WHEEL) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b'')
    return path


def test_wheel_in_cache_and_shared_folder_is_found_in_the_cache(tmp_path):
    # The bug: `ls | head -n 1` in a loop piped to `head -n 1` under pipefail ended the set-up
    # with exit status 141 (SIGPIPE) and no message when both folders held the wheel; the race
    # did not lose every time, so try several times.
    cached = _wheel(tmp_path / 'cache' / f'{PYTAG}-torch2.13.0')
    _wheel(tmp_path / 'cache' / f'{PYTAG}-torch2.13.0', WHEEL.replace('x86_64', 'y'))
    _wheel(tmp_path / 'shared')
    for _ in range(5):
        proc = _setup_env(tmp_path, '--find-mmcv-wheel')
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f'{cached}\n'


def test_wheel_only_in_shared_folder(tmp_path):
    shared = _wheel(tmp_path / 'shared')
    proc = _setup_env(tmp_path, '--find-mmcv-wheel')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f'{shared}\n'


def test_no_wheel_is_said(tmp_path):
    _wheel(tmp_path / 'shared', WHEEL.replace(PYTAG, 'cp27'))  # another Python's wheel
    proc = _setup_env(tmp_path, '--find-mmcv-wheel')
    assert proc.returncode == 1 and proc.stdout == ''
    assert 'no mmcv 2.1.0 wheel' in proc.stderr and 'FAILED' not in proc.stderr


def test_unknown_argument_is_refused(tmp_path):
    proc = _setup_env(tmp_path, '--frobnicate')
    assert proc.returncode == 2 and 'usage' in proc.stderr


def test_a_failing_step_says_what_failed(tmp_path):
    venv_python = tmp_path / 'venv' / 'bin' / 'python'
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text('#!/bin/sh\nexit 7\n')
    venv_python.chmod(0o755)
    proc = _setup_env(tmp_path, VENV=str(tmp_path / 'venv'))
    assert proc.returncode == 7
    assert '[setup] installing torch' in proc.stdout
    command = '"${PIP[@]}" --upgrade pip'
    failure = [line for line in proc.stderr.splitlines() if 'FAILED' in line]
    assert failure == [f'[setup] FAILED (exit 7) at tools/setup_env.sh line {_line_of(command)}: '
                       f'{command}']


def _line_of(text: str) -> int:
    lines = SCRIPT.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.strip() == text)


def _stand_in_venv(tmp_path: Path) -> Path:
    """A venv whose Python records pip's arguments instead of installing, says mmcv is missing,
    and passes every other check: the set-up runs its whole course in a moment."""
    venv = tmp_path / 'venv'
    python = venv / 'bin' / 'python'
    python.parent.mkdir(parents=True)
    python.write_text(f'''#!/bin/sh
case "$1" in
    -m) echo "$*" >> "{venv}/pip.log" ;;
    -c) case "$2" in
            *sys.version_info*) echo {PYTAG} ;;
            *"import mmcv, mmcv.ops; assert"*) exit 1 ;;
        esac ;;
esac
exit 0
''')
    python.chmod(0o755)
    return venv


def test_setup_installs_the_cached_wheel_when_the_shared_folder_has_it_too(tmp_path):
    """The reported failure, end to end: the set-up stopped right after "installing torch" with
    exit status 141 and no message."""
    cached = _wheel(tmp_path / 'cache' / f'{PYTAG}-torch2.13.0')
    _wheel(tmp_path / 'shared')
    venv = _stand_in_venv(tmp_path)
    proc = _setup_env(tmp_path, VENV=str(venv))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f'[setup] installing {WHEEL}' in proc.stdout
    pip = (venv / 'pip.log').read_text().splitlines()
    assert any(line.endswith(f'--no-deps {cached}') for line in pip), pip
    assert list(venv.glob('.mmhybrid-setup-*')), 'no stamp written'
