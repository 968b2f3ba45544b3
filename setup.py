"""mmhybrid: hybrid CNN-Transformer backbones for mmdet 3.x and mmsegmentation 1.x."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r"__version__ = '([^']+)'",
                    (HERE / 'mmhybrid' / 'version.py').read_text()).group(1)

# Ranges, not pins, so that mmhybrid installs beside an existing OpenMMLab environment. The exact
# versions the tests run with are in requirements/constraints.txt (used by tools/setup_env.sh);
# tests/test_packaging.py checks that they lie inside these ranges.
INSTALL_REQUIRES = [
    # torch.compiler.is_exporting (called by the backbones) first appears in torch 2.7.
    'torch>=2.7',
    # mmdet 3.3 requires mmengine>=0.7.1,<1.0.0 and mmseg 1.2 mmengine>=0.5.0,<1.0.0.
    'mmengine>=0.7.1,<1.0.0',
    # mmdet 3.x and mmseg 1.x both refuse mmcv outside [2.0.0rc4, 2.2.0) at import.
    'mmcv>=2.0.0rc4,<2.2.0',
    'mmdet>=3.0.0,<4.0.0',
    'mmsegmentation>=1.0.0,<2.0.0',
    # mmseg 1.2 imports these without declaring them.
    'ftfy',
    'regex',
    'numpy>=1.24',
    'matplotlib',
    'pycocotools',
    # mmengine resolves `mmdet::` / `mmseg::` base configs through pkg_resources, which
    # setuptools 81 removes.
    'setuptools<81',
]

setup(
    name='mmhybrid',
    version=VERSION,
    description=('CrossFormer, UniFormer, CMT, TransCNN/HAT-Net and VAN backbones '
                 'for mmdet 3.x and mmsegmentation 1.x'),
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    url='https://github.com/OWNER/mmhybrid',
    project_urls={
        'Source': 'https://github.com/OWNER/mmhybrid',
        'Issues': 'https://github.com/OWNER/mmhybrid/issues',
        'Documentation': 'https://github.com/OWNER/mmhybrid#readme',
    },
    keywords='computer vision, object detection, semantic segmentation, backbone, '
             'vision transformer, openmmlab',
    classifiers=[
        'Development Status :: 4 - Beta',
        'Intended Audience :: Developers',
        'Intended Audience :: Science/Research',
        'Operating System :: POSIX :: Linux',
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3 :: Only',
        'Programming Language :: Python :: 3.11',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
        'Topic :: Scientific/Engineering :: Image Recognition',
    ],
    # The tests run on Python 3.11; not capped above (a cap would block installs that may work).
    python_requires='>=3.11',
    packages=find_packages(include=['mmhybrid', 'mmhybrid.*']),
    install_requires=INSTALL_REQUIRES,
    extras_require={
        'tests': ['pytest>=8', 'pytest-xdist>=3'],
        # ONNX export (torch.onnx's exporter needs onnxscript) and onnxruntime inference.
        'deploy': ['onnx>=1.16', 'onnxruntime>=1.18', 'onnxscript>=0.2'],
    },
    zip_safe=False,
)
