"""mmhybrid: hybrid CNN-Transformer backbones for mmdet 3.x and mmsegmentation 1.x."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r"__version__ = '([^']+)'",
                    (HERE / 'mmhybrid' / 'version.py').read_text()).group(1)

setup(
    name='mmhybrid',
    version=VERSION,
    description=('CrossFormer, UniFormer, CMT, TransCNN/HAT-Net and VAN backbones '
                 'for mmdet 3.x and mmsegmentation 1.x'),
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=['mmhybrid', 'mmhybrid.*']),
    install_requires=[
        'torch>=2.1',
        'mmengine==0.10.7',
        'mmcv==2.1.0',
        'mmdet==3.3.0',
        'mmsegmentation==1.2.2',
        # mmseg 1.2.2 imports these without declaring them.
        'ftfy',
        'regex',
        'numpy>=1.24',
        'matplotlib',
        'pycocotools',
        # mmdet/mmseg configs are resolved through pkg_resources.
        'setuptools>=77,<81',
    ],
    extras_require={
        'tests': ['pytest>=8', 'pytest-xdist>=3'],
        # ONNX export (torch.onnx's exporter needs onnxscript) and onnxruntime inference.
        'deploy': ['onnx>=1.16', 'onnxruntime>=1.18', 'onnxscript>=0.2'],
    },
    zip_safe=False,
)
