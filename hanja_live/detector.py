"""Detector: letterbox -> backend -> decode -> verifier, the model half of the pipeline."""

import time
from typing import Callable, NamedTuple, Tuple

from .decode import Decoder
from .detections import Detections
from .letterbox import Letterbox


def _pick_thread_clock():
    # type: () -> Callable[[], float]
    """CPU seconds used by the calling thread; wall time where the platform cannot tell.

    Wall time of a stage includes the time its thread waited for a core, which on a busy
    machine says more about the neighbours than about the stage; CPU time does not.
    """
    if hasattr(time, "clock_gettime") and hasattr(time, "CLOCK_THREAD_CPUTIME_ID"):  # Unix
        return lambda: time.clock_gettime(time.CLOCK_THREAD_CPUTIME_ID)
    return getattr(time, "thread_time", time.perf_counter)  # thread_time: Python 3.7+


thread_clock = _pick_thread_clock()


class StageTimes(NamedTuple):
    """Milliseconds of one frame; *_cpu_ms: CPU time of the calling thread in that stage."""

    preprocess_ms: float
    inference_ms: float
    decode_ms: float
    preprocess_cpu_ms: float
    decode_cpu_ms: float
    verify_ms: float  # the verifier's patches and network; 0 without one


class Detector(object):
    """Runs one frame through the model; configured once, no per-call state beyond buffers."""

    def __init__(self, backend, conf=0.25, iou=0.45, max_det=100, verifier=None):
        """verifier: a hanja_live.verifier.Verifier that rescores the decoded boxes, or None."""
        info = backend.info
        self.conf = conf
        self.verifier = verifier
        self.backend = backend
        self.names = info.names
        self.letterbox = Letterbox(backend.input, stride=info.stride)
        self.decoder = Decoder(len(info.names), conf=conf, iou=iou, max_det=max_det,
                               layout=info.layout)

    def __call__(self, image):
        # type: (...) -> Tuple[Detections, StageTimes]
        c0, t0 = thread_clock(), time.perf_counter()
        transform = self.letterbox(image)
        c1, t1 = thread_clock(), time.perf_counter()
        outputs = self.backend.infer()
        c2, t2 = thread_clock(), time.perf_counter()
        detections = self.decoder(outputs[0], transform)
        c3, t3 = thread_clock(), time.perf_counter()
        t4 = t3
        if self.verifier is not None:
            detections = self.verifier(image, detections, self.conf)
            t4 = time.perf_counter()
        return detections, StageTimes((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3,
                                      (c1 - c0) * 1e3, (c3 - c2) * 1e3, (t4 - t3) * 1e3)
