"""The interface every inference backend offers.

The preprocessor writes the letterboxed image straight into ``backend.input`` (a buffer
allocated once: page-locked host memory for TensorRT, a plain array for ONNX Runtime),
then calls ``infer()``. Buffers are filled in place, never rebound.
"""

from typing import List

import numpy as np

from ..closing import ClosesOnExit
from ..model_info import ModelInfo


class Backend(ClosesOnExit):
    """Abstract backend.

    name:      short name for the log line, e.g. "onnxruntime", "tensorrt"
    precision: "fp32", "fp16" or "int8"
    detail:    why this backend/precision was chosen (provider list, engine path, ...)
    info:      ModelInfo (class names, input size, stride, layout)
    input:     (1, 3, H, W) array of the model's input dtype; write into it, never replace it
    on_cpu:    the network runs on the CPU alone (then sessions side by side pay off)
    """

    name = "abstract"
    precision = "fp32"
    detail = ""
    # set by each backend's __init__ (declared, not assigned: there is no backend without them)
    info: "ModelInfo"
    input: np.ndarray
    on_cpu = False

    def infer(self):
        # type: () -> List[np.ndarray]
        """Run the network on ``self.input``; returns the outputs (valid until the next call)."""
        raise NotImplementedError
