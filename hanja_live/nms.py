"""Greedy non-maximum suppression, optionally per class."""

from typing import List, Optional

import numpy as np


def nms(boxes_xyxy, scores, iou_thres, classes=None, max_keep=None):
    # type: (np.ndarray, np.ndarray, float, Optional[np.ndarray], Optional[int]) -> np.ndarray
    """Indices of the boxes kept, highest score first.

    boxes_xyxy: (N, 4) x1 y1 x2 y2;  scores: (N,);  classes: (N,) ints or None.
    A box is dropped when its IoU with a higher-scoring kept box of the same class exceeds
    ``iou_thres``. With ``classes``, each class is moved to its own region of the plane, so
    boxes of different classes never overlap and one pass suppresses within classes only.
    ``max_keep`` stops once that many boxes are kept.
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores).reshape(-1)
    if len(scores) != len(boxes):
        raise ValueError("nms: %d boxes but %d scores" % (len(boxes), len(scores)))
    if len(boxes) == 0:
        return np.zeros((0,), np.intp)
    if classes is not None:
        classes = np.asarray(classes).reshape(-1)
        if len(classes) != len(boxes):
            raise ValueError("nms: %d boxes but %d classes" % (len(boxes), len(classes)))
        # span exceeds every box's extent, so class c's boxes stay inside their own band
        span = boxes.max() - boxes.min() + 1.0
        boxes = boxes + (classes.astype(np.float64) * span)[:, None]
    x1, y1, x2, y2 = boxes.T
    areas = np.clip(x2 - x1, 0.0, None) * np.clip(y2 - y1, 0.0, None)
    limit = len(boxes) if max_keep is None else int(max_keep)

    order = np.argsort(-scores, kind="stable")
    keep = []  # type: List[int]
    while order.size and len(keep) < limit:
        best, rest = order[0], order[1:]
        keep.append(best)
        iw = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0.0, None)
        ih = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0.0, None)
        inter = iw * ih
        union = areas[best] + areas[rest] - inter
        # two empty boxes have union 0: count them as not overlapping
        iou = inter / np.maximum(union, np.finfo(np.float64).tiny)
        order = rest[iou <= iou_thres]
    return np.array(keep, dtype=np.intp)
