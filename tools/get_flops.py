#!/usr/bin/env python
"""Parameters and FLOPs (multiply-accumulates, as the papers count them) of a backbone or config.

    python tools/get_flops.py van:b2 --shape 224 224
    python tools/get_flops.py configs/det/maskrcnn_van_b2_1x.py --shape 800 1333

Attention computed by ``scaled_dot_product_attention`` is counted (mmengine's counter misses it);
for a backbone the count without it is printed too (the convention of the HAT-Net paper's table).
For a config, the backbone and the backbone + neck (``extract_feat``) are counted; heads are not.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('target', help='family:arch (e.g. van:b2) or a config file')
    parser.add_argument('--shape', nargs=2, type=int, default=[224, 224], metavar=('H', 'W'))
    args = parser.parse_args(argv)

    import torch
    from mmhybrid.utils import count_macs, count_params
    x = torch.randn(1, 3, *args.shape)
    if args.target.endswith('.py'):
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        cfg = Config.fromfile(args.target)
        cfg.model.backbone.init_cfg = None
        init_default_scope(cfg.default_scope)
        if cfg.default_scope == 'mmdet':
            from mmdet.registry import MODELS
        else:
            from mmseg.registry import MODELS
        model = MODELS.build(cfg.model).eval()
        backbone = model.backbone

        class Feat(torch.nn.Module):

            def forward(self, inputs):
                return model.extract_feat(inputs)

        feat = torch.nn.ModuleList([backbone] + ([model.neck] if hasattr(model, 'neck') else []))
        rows = [('backbone', backbone, count_macs(backbone, x)),
                ('backbone + neck', feat, count_macs(Feat(), x)),
                ('whole model (params only)', model, None)]
    else:
        sys.argv = [sys.argv[0]]
        from benchmark import build  # tools/benchmark.py
        backbone = build(args.target, {}).eval()
        rows = [('backbone', backbone, count_macs(backbone, x)),
                ('backbone without attention', backbone,
                 count_macs(backbone, x, attention=False))]
    print(f'input shape: 1x3x{args.shape[0]}x{args.shape[1]}')
    for name, module, macs in rows:
        flops = f'{macs / 1e9:.3f} GFLOPs (MACs)' if macs is not None else '-'
        print(f'{name:28s} params {count_params(module) / 1e6:8.2f} M   {flops}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
