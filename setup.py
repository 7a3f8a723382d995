"""hanja_live: live recognition of handwritten hanja numerals (Jetson / x86).

Runtime needs only NumPy, PyYAML and OpenCV; inference comes from TensorRT + pycuda
(JetPack) or ONNX Runtime. OpenCV is not listed as a requirement because JetPack and
Debian ship it (with GStreamer) outside pip; run.sh installs a wheel only when
``import cv2`` fails.
"""

from setuptools import find_packages, setup

setup(
    name="hanja_live",
    version="0.1.0",
    description="Real-time handwritten hanja numeral recognition for NVIDIA Jetson",
    packages=find_packages(include=["hanja_live", "hanja_live.*"]),
    package_data={"hanja_live": ["default.yaml", "assets/*", "assets/*/*", "train/assets/*.md",
                                 "train/assets/*/*", "train/assets/fonts/*/*"]},
    python_requires=">=3.6",
    install_requires=["numpy>=1.13", "PyYAML>=3.12"],
    extras_require={
        "onnxruntime": ["onnxruntime>=1.10"],
        "opencv": ["opencv-python-headless>=4.1"],
        "test": ["pytest>=6", "onnx>=1.12", "vermin>=1.6", "mypy>=1.0", "fonttools"],
        "train": ["torch", "ultralytics", "torch-pruning", "onnx", "onnxruntime", "onnxslim",
                  "fonttools"],
    },
    entry_points={"console_scripts": ["hanja-live=hanja_live.cli:main"]},
)
