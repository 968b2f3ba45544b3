# CrossFormer-L with the group sizes / intervals of the official Semantic FPN config
# (segmentation/configs/fpn_crossformer_l_ade20k_40k.py): G = 14, 14, 7, 7 and I = 16, 8, 2, 1.
_base_ = ['./crossformer_l.py']
backbone = dict(group_size=[14, 14, 7, 7], interval=[16, 8, 2, 1])
