"""Decode a YOLO output tensor into Detections in source-image pixels.

Two head layouts, told apart by shape (nc = number of classes, N = number of boxes):
  anchor_based  (1, N, 5 + nc)  rows [cx, cy, w, h, obj, cls...]  score = obj * cls
  anchor_free   (1, 4 + nc, N)  rows [cx, cy, w, h, cls...]       score = cls
Coordinates are in network-input pixels; scores are already sigmoid outputs.
"""

from typing import Any, Dict, Optional, Tuple

import numpy as np

from .detections import Detections
from .errors import ModelError
from .model_info import LAYOUTS
from .nms import nms


class Decoder(object):
    """Callable: (output, LetterboxTransform) -> Detections.

    A box survives when its best class score is strictly above ``conf``; NMS runs per
    class; at most ``max_det`` boxes, highest score first.
    """

    def __init__(self, num_classes, conf=0.25, iou=0.45, max_det=100, layout=None):
        # type: (int, float, float, int, Optional[str]) -> None
        if num_classes < 1:
            raise ValueError("Decoder needs at least one class, got %r" % (num_classes,))
        if layout is not None and layout not in LAYOUTS:
            raise ValueError("layout must be one of %s or None, got %r" % (LAYOUTS, layout))
        if max_det < 1:
            raise ValueError("max_det must be at least 1, got %r" % (max_det,))
        self.num_classes = int(num_classes)
        self.conf = float(conf)
        self.iou = float(iou)
        self.max_det = int(max_det)
        self.layout = layout
        self._layouts = {}  # type: Dict[Tuple[int, ...], str]
        # (N, dtype) -> (N,) pass mask or best class score per box
        self._buffers = {}  # type: Dict[Tuple[int, str], np.ndarray]

    def layout_for(self, shape):
        # type: (tuple) -> str
        """Which layout an output of this shape has; ModelError when it fits neither."""
        shape = tuple(int(d) for d in shape)
        known = self._layouts.get(shape)
        if known is not None:
            return known
        nc = self.num_classes
        fits_based = len(shape) == 3 and shape[0] == 1 and shape[2] == 5 + nc
        fits_free = len(shape) == 3 and shape[0] == 1 and shape[1] == 4 + nc
        if fits_based and fits_free:
            if self.layout is not None:
                layout = self.layout
            else:
                # N (boxes) is far larger than 4 + nc / 5 + nc for any real model
                layout = "anchor_based" if shape[1] > shape[2] else "anchor_free"
        elif fits_based:
            layout = "anchor_based"
        elif fits_free:
            layout = "anchor_free"
        else:
            raise ModelError("model output shape %s does not fit %d classes: expected (1, N, %d) "
                             "or (1, %d, N); is this a hanja_live model?"
                             % (shape, nc, 5 + nc, 4 + nc))
        self._layouts[shape] = layout
        return layout

    def _scratch(self, n, dtype):
        # type: (int, Any) -> np.ndarray
        """A (n,) buffer kept between frames (the output shape does not change)."""
        key = (n, np.dtype(dtype).str)
        buf = self._buffers.get(key)
        if buf is None:
            buf = np.empty((n,), dtype)
            self._buffers[key] = buf
        return buf

    def __call__(self, output, transform):
        """output: one network output array (float32 or float16); transform: LetterboxTransform."""
        output = np.asarray(output)
        layout = self.layout_for(output.shape)
        if layout == "anchor_based":
            table = output[0]  # (N, 5 + nc)
            mask = self._scratch(table.shape[0], np.bool_)
            # score = obj * cls <= obj, so obj alone rules most boxes out cheaply; compared
            # in float32 so a float16 output meets the same threshold as the final score
            np.greater(table[:, 4], self.conf, out=mask, signature="ff->?")
            rows = table[mask].astype(np.float32)  # (k, 5 + nc)
            class_scores = rows[:, 5:] * rows[:, 4:5]
        else:
            table = output[0]  # (4 + nc, N)
            best = self._scratch(table.shape[1], table.dtype)
            mask = self._scratch(table.shape[1], np.bool_)
            np.max(table[4:], axis=0, out=best)
            np.greater(best, self.conf, out=mask, signature="ff->?")
            rows = table[:, mask].T.astype(np.float32)  # (k, 4 + nc)
            class_scores = rows[:, 4:]
        if len(rows) == 0:
            return Detections.empty()

        cls = np.argmax(class_scores, axis=1)
        score = class_scores[np.arange(len(cls)), cls]
        passed = score > self.conf
        rows, cls, score = rows[passed], cls[passed], score[passed]
        if len(rows) == 0:
            return Detections.empty()

        half_wh = rows[:, 2:4] * np.float32(0.5)
        xyxy = np.concatenate([rows[:, 0:2] - half_wh, rows[:, 0:2] + half_wh], axis=1)
        keep = nms(xyxy, score, self.iou, classes=cls, max_keep=self.max_det)
        return Detections(transform.to_original(xyxy[keep]), score[keep], cls[keep])
