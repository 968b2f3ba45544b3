# Mask R-CNN (FPN) on COCO trained with the multi-scale + crop pipeline (./ms_crop_pipeline.py);
# the test is ./maskrcnn.py's (shorter side 800, longer at most 1333, single scale). A leaf adds a
# 3x family recipe (./{family}_3x.py) and a backbone.
_base_ = ['./maskrcnn.py', './ms_crop_pipeline.py']
train_dataloader = dict(dataset=dict(pipeline=_base_.ms_crop_train_pipeline))
