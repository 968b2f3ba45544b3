"""Training-time helpers: crash-safe checkpoint writing, exact resume, rank-sync checks, CPU
distributed training, the configs and Runners behind ``tools/train.py`` / ``tools/test.py``, and
the exit status and error messages every tool shares (``cli``).

Importing it registers the atomic checkpoint file backend, the hooks and the
``CPUDistributedDataParallel`` model wrapper and the optimizer wrapper constructor
``PlainGroupsOptimWrapperConstructor`` (``import mmhybrid`` does).
"""
from .atomic_backend import ATOMIC_BACKEND, AtomicLocalBackend, atomic_write_bytes
from .dist import CPU_DDP, CPUDistributedDataParallel, setup_cpu_distributed
from .optim import PlainGroupsOptimWrapperConstructor
from .cli import (BAD_INPUT_EXIT, BadInputError, bad_input_exits, check_config_file,
                  exit_bad_input)
from .preflight import exit_if_checkpoint_unusable, exit_if_inputs_missing, missing_inputs
from .hooks import (DeterministicResumeHook, OptimizeForInferenceHook, OptimizeForTrainingHook,
                    SwitchToDeployHook, WeightSyncCheckHook, derived_seed,
                    mismatched_parameters, parameter_digests)
from .runner import (build_runner, build_test_config, build_train_config, register_scope,
                     train_fp32_without_amp_device, use_atomic_checkpoints,
                     use_deterministic_resume)

__all__ = ['ATOMIC_BACKEND', 'AtomicLocalBackend', 'atomic_write_bytes',
           'CPU_DDP', 'CPUDistributedDataParallel', 'setup_cpu_distributed',
           'DeterministicResumeHook', 'OptimizeForInferenceHook', 'OptimizeForTrainingHook',
           'SwitchToDeployHook', 'WeightSyncCheckHook', 'derived_seed',
           'mismatched_parameters', 'parameter_digests',
           'BAD_INPUT_EXIT', 'BadInputError', 'bad_input_exits', 'check_config_file',
           'exit_bad_input',
           'exit_if_checkpoint_unusable', 'exit_if_inputs_missing', 'missing_inputs',
           'PlainGroupsOptimWrapperConstructor', 'build_runner', 'build_test_config',
           'build_train_config', 'register_scope', 'train_fp32_without_amp_device',
           'use_atomic_checkpoints', 'use_deterministic_resume']
