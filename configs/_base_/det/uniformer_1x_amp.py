# UniFormer's COCO recipe, 1x schedule, in mixed precision as the authors trained the hybrid S/B
# detectors (Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d:
# object_detection/exp/{mask_rcnn_1x,mask_rcnn_3x_ms,cascade_mask_rcnn_3x_ms}_hybrid_{small,base}/
# config.py: runner EpochBasedRunnerAmp, DistOptimizerHook(use_fp16=True), i.e. apex AMP O1 with
# its dynamic loss scale, object_detection/mmdet/apis/train.py). Here mmengine's AmpOptimWrapper:
# fp16 autocast, dynamic loss scale. On a machine without a GPU tools/train.py says so and trains
# in fp32. The light XXS/XS models were trained in fp32 (use_fp16=False): ./uniformer_1x.py.
_base_ = ['./uniformer_1x.py']
optim_wrapper = dict(type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
