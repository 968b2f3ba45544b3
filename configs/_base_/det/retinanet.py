# RetinaNet (FPN) on COCO: mmdet's retinanet_r50_fpn_1x_coco.py less its schedule. A leaf adds a
# family recipe (./{family}_1x.py: optimizer and schedule) and a backbone (../backbones/*.py).
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/default_runtime.py',
    'mmdet::retinanet/retinanet_tta.py',
]
model = dict(
    data_preprocessor=dict(bgr_to_rgb=True),  # ImageNet mean/std in RGB, as pretrained
    # The FPN layout of mmdet's transformer RetinaNets (PVT, Swin): P3-P5 from the backbone,
    # extra levels from its last output.
    neck=dict(start_level=1, add_extra_convs='on_input'))
