"""Distributed training and testing on CPU-only machines (gloo).

Importing this module (``import mmhybrid`` does) registers ``CPUDistributedDataParallel`` in
mmengine's ``MODEL_WRAPPERS`` under its own name; mmengine's ``MMDistributedDataParallel`` stays
as it is. Any runner, ours or mmdet's/mmseg's own ``tools/train.py``, can select it with
``model_wrapper_cfg=dict(type='CPUDistributedDataParallel')`` once a gloo process group exists;
:func:`setup_cpu_distributed` does both for our tools.
"""
import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS

CPU_DDP = 'CPUDistributedDataParallel'


@MODEL_WRAPPERS.register_module(name=CPU_DDP)
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper for CPU modules (gloo).

    The Runner always passes ``device_ids=[LOCAL_RANK]``, which torch's DDP rejects for a module
    on the CPU, and SyncBatchNorm (mmseg's heads) only runs on GPUs, so it becomes BatchNorm here.
    A module on a GPU is wrapped exactly as by ``MMDistributedDataParallel``.
    """

    def __init__(self, module: torch.nn.Module, device_ids=None, **kwargs) -> None:
        if next(module.parameters()).device.type == 'cpu':
            device_ids = None
            module = revert_sync_batchnorm(module)
        super().__init__(module=module, device_ids=device_ids, **kwargs)


def setup_cpu_distributed(cfg: Config) -> None:
    """Prepares ``cfg`` for distributed training without CUDA; a no-op with CUDA or without a
    launcher.

    Sets the gloo backend, initialises the process group for the ``pytorch`` launcher (mmengine's
    launcher calls ``torch.cuda.set_device``, which a CPU build of torch lacks), and swaps the
    default ``MMDistributedDataParallel`` wrapper for :class:`CPUDistributedDataParallel`. A
    config that names another wrapper keeps it.
    """
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    cfg.merge_from_dict({'env_cfg.dist_cfg.backend': 'gloo'})  # creates what is missing
    if cfg.launcher == 'pytorch' and not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    if wrapper.get('type', 'MMDistributedDataParallel') == 'MMDistributedDataParallel':
        wrapper['type'] = CPU_DDP
    cfg.model_wrapper_cfg = wrapper
