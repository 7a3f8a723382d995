"""Detector: letterbox -> backend -> decode, the model half of the pipeline."""

import time
from typing import NamedTuple, Tuple

from .decode import Decoder
from .detections import Detections
from .letterbox import Letterbox


class StageTimes(NamedTuple):
    preprocess_ms: float
    inference_ms: float
    decode_ms: float


class Detector(object):
    """Runs one frame through the model; configured once, no per-call state beyond buffers."""

    def __init__(self, backend, conf=0.25, iou=0.45, max_det=100):
        info = backend.info
        self.backend = backend
        self.names = info.names
        self.letterbox = Letterbox(backend.input, stride=info.stride)
        self.decoder = Decoder(len(info.names), conf=conf, iou=iou, max_det=max_det,
                               layout=info.layout)

    def __call__(self, image):
        # type: (...) -> Tuple[Detections, StageTimes]
        t0 = time.perf_counter()
        transform = self.letterbox(image)
        t1 = time.perf_counter()
        outputs = self.backend.infer()
        t2 = time.perf_counter()
        detections = self.decoder(outputs[0], transform)
        t3 = time.perf_counter()
        return detections, StageTimes((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
