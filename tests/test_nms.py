"""NMS: hand-made cases with known answers, and random boxes against OpenCV's NMSBoxes."""

import cv2
import numpy as np
import pytest

from hanja_live.nms import nms


@pytest.mark.parametrize(
    "boxes, scores, iou, classes, max_keep, expected",
    [
        pytest.param([], [], 0.5, None, None, [], id="empty"),
        pytest.param([[0, 0, 10, 10]], [0.3], 0.5, None, None, [0], id="single"),
        # IoU 81/119 = 0.68: the lower one goes, whatever the input order
        pytest.param([[1, 1, 11, 11], [0, 0, 10, 10]], [0.6, 0.9], 0.5, None, None, [1],
                     id="overlap-same-class"),
        pytest.param([[1, 1, 11, 11], [0, 0, 10, 10]], [0.6, 0.9], 0.5, [3, 4], None, [1, 0],
                     id="overlap-other-class"),
        pytest.param([[1, 1, 11, 11], [0, 0, 10, 10]], [0.6, 0.9], 0.5, [2, 2], None, [1],
                     id="overlap-same-class-label"),
        # IoU exactly 0.5 (50 / 100): only overlap above the threshold suppresses
        pytest.param([[0, 0, 10, 10], [0, 0, 10, 5]], [0.9, 0.8], 0.5, None, None, [0, 1],
                     id="iou-equal-threshold-kept"),
        pytest.param([[0, 0, 10, 10], [0, 0, 10, 5]], [0.9, 0.8], 0.49, None, None, [0],
                     id="iou-above-threshold"),
        # B overlaps A and C, A and C are apart: B goes, and C stays because B is gone
        pytest.param([[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]], [0.9, 0.8, 0.7], 0.3,
                     None, None, [0, 2], id="chain"),
        pytest.param([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], [0.2, 0.9, 0.5], 0.5,
                     None, None, [1, 2, 0], id="disjoint-sorted-by-score"),
        pytest.param([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], [0.2, 0.9, 0.5], 0.5,
                     None, 2, [1, 2], id="max-keep"),
        pytest.param([[5, 5, 5, 5], [5, 5, 5, 5]], [0.9, 0.8], 0.5, None, None, [0, 1],
                     id="empty-boxes-do-not-overlap"),
        # negative coordinates and classes far apart still separate
        pytest.param([[-20, -20, -10, -10], [-20, -20, -10, -10]], [0.5, 0.7], 0.5, [0, 9],
                     None, [1, 0], id="negative-coords-classes"),
        pytest.param([[0, 0, 1, 1], [0, 0, 2, 2]], [0.5], 0.5, None, None, ValueError,
                     id="error-scores-length"),
        pytest.param([[0, 0, 1, 1]], [0.5], 0.5, [0, 1], None, ValueError,
                     id="error-classes-length"),
    ],
)
def test_nms_cases(boxes, scores, iou, classes, max_keep, expected):
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    scores = np.array(scores, np.float32)
    if isinstance(expected, type):
        with pytest.raises(expected):
            nms(boxes, scores, iou, classes=classes, max_keep=max_keep)
        return
    keep = nms(boxes, scores, iou, classes=classes, max_keep=max_keep)
    assert keep.dtype == np.intp
    assert keep.tolist() == expected


def opencv_nms_per_class(boxes, scores, classes, iou):
    """Reference: cv2.dnn.NMSBoxes on each class, merged and sorted by score."""
    kept = []
    for c in np.unique(classes):
        idx = np.flatnonzero(classes == c)
        xywh = [(float(x1), float(y1), float(x2 - x1), float(y2 - y1))
                for x1, y1, x2, y2 in boxes[idx]]
        picked = np.array(cv2.dnn.NMSBoxes(xywh, scores[idx].tolist(), 0.0, iou)).reshape(-1)
        kept.extend(idx[picked].tolist())
    return sorted(kept, key=lambda i: -scores[i])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("iou", [0.2, 0.45, 0.7])
@pytest.mark.parametrize("num_classes", [1, 3])
def test_nms_matches_opencv_on_random_boxes(seed, iou, num_classes):
    rng = np.random.default_rng(seed)
    n = 300
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(10, 60, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = rng.uniform(0.01, 1.0, n).astype(np.float32)
    classes = rng.integers(0, num_classes, n)

    keep = nms(boxes, scores, iou, classes=classes if num_classes > 1 else None)
    expected = opencv_nms_per_class(boxes, scores, classes, iou)
    assert 0 < len(expected) < n  # the boxes overlap enough for NMS to matter
    assert keep.tolist() == expected
