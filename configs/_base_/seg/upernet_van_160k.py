# VAN's UPerNet recipe (Visual-Attention-Network/VAN-Segmentation): ./upernet_160k.py's, with no
# decay on the layer scales either.
_base_ = ['./upernet_160k.py']
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'layer_scale': dict(decay_mult=0.)}))
