"""What the command-line tools share: one exit status for bad input, one way to report it.

Exit status of every tool under ``tools/``: 0 when it did its work; 2 when what it was given
cannot be used (a missing config or data, a corrupt or unfitting checkpoint, a malformed
argument, an output that would overwrite files), as argparse does for bad usage; 1 when the work
itself failed (a step of ``tools/demo.py``, the exporter on a valid model) or a check the user
asked for found a difference (``tools/model_zoo.py --check``, the onnxruntime check of
``tools/deploy/export_onnx.py``). Bad input ends with one ``error:`` message naming the problem
and what to do, never a traceback.
"""
import os.path as osp
import pickle
import sys
from contextlib import contextmanager
from typing import Iterator, NoReturn

# The modules, not the package: mmhybrid.checkpoint imports this package for its atomic writes.
from ..checkpoint.safe_load import CheckpointLoadError, without_unsafe_advice
from ..models.loading import CheckpointMismatchError

BAD_INPUT_EXIT = 2


class BadInputError(ValueError):
    """Input a tool cannot use; the message names the problem and what to do about it."""


# What a tool reports as bad input rather than as a crash: our own errors about the user's files,
# and torch's refusal to unpickle a checkpoint the Runner loads (its advice is removed).
BAD_INPUT_ERRORS = (BadInputError, CheckpointLoadError, CheckpointMismatchError,
                    pickle.UnpicklingError)


def check_config_file(config: str) -> None:
    """Raises :class:`BadInputError` when ``config`` is not a file."""
    if not osp.isfile(config):
        raise BadInputError(f'config file not found: {config}; give the path of a config file, '
                            f'e.g. configs/det/maskrcnn_crossformer_s_1x.py')


def exit_bad_input(message: str) -> NoReturn:
    """Prints ``error: message`` to stderr (less any advice to load with ``weights_only=False``)
    and exits with :data:`BAD_INPUT_EXIT`."""
    print(f'error: {without_unsafe_advice(message)}', file=sys.stderr)
    raise SystemExit(BAD_INPUT_EXIT)


@contextmanager
def bad_input_exits() -> Iterator[None]:
    """Ends a tool with one message and :data:`BAD_INPUT_EXIT` on :data:`BAD_INPUT_ERRORS`."""
    try:
        yield
    except BAD_INPUT_ERRORS as error:
        if isinstance(error, pickle.UnpicklingError):
            exit_bad_input(f'cannot load a checkpoint ({without_unsafe_advice(str(error))}): it '
                           f'is corrupt or holds objects torch does not load safely; give a '
                           f'checkpoint written by tools/train.py, or convert the file with '
                           f'tools/convert_checkpoint.py')
        exit_bad_input(str(error))
