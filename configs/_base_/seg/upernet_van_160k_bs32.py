# VAN's UPerNet recipe (./upernet_van_160k.py) at 4 images per GPU (x 8 = 32), as the official
# VAN-B4 configs (upernet_van_b4_512x512_160k_ade20k{,_22k}.py: samples_per_gpu=4, the learning
# rate unchanged).
_base_ = ['./upernet_van_160k.py']
train_dataloader = dict(batch_size=4)  # x 8 GPUs = 32
auto_scale_lr = dict(base_batch_size=32)
