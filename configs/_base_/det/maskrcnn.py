# Mask R-CNN (FPN) on COCO: mmdet's mask-rcnn_r50_fpn_1x_coco.py less its schedule. A leaf adds a
# family recipe (./{family}_1x.py: optimizer and schedule) and a backbone (../backbones/*.py).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(data_preprocessor=dict(bgr_to_rgb=True))  # ImageNet mean/std in RGB, as pretrained
