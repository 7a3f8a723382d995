"""hanja_live: real-time recognition of handwritten hanja numerals on Jetson boards.

The runtime package never imports torch and stays Python-3.6 compatible (JetPack 4.6);
the training tools live in ``hanja_live.train`` and may use modern Python.
"""

__version__ = "0.1.0"

CLASS_NAMES = ("一", "二", "三", "四", "五", "六", "七", "八", "九", "十")
