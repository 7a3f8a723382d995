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


def clustered_boxes(rng, n, clusters, spread, size=(20, 40)):
    """``n`` boxes jittered around ``clusters`` centres, as a detector reports one character."""
    centres = rng.uniform(0, 400, (clusters, 2))
    which = rng.integers(0, clusters, n)
    xy = centres[which] + rng.normal(0, spread, (n, 2))
    wh = rng.uniform(size[0], size[1], (n, 2))
    return np.concatenate([xy - wh / 2, xy + wh / 2], axis=1).astype(np.float32), which


# (candidates, clusters, jitter, box size, max_keep, classes, path the input must take)
CROWDS = [
    (20, 3, 3.0, (20, 40), 100, 10, "vectorised"),
    (321, 40, 3.0, (20, 40), 100, 10, "vectorised"),
    (600, 80, 6.0, (10, 80), None, 3, "vectorised"),
    # only five to keep: five turns of the loop are cheaper than the pairs
    (400, 20, 1.0, (5, 30), 5, 1, "loop"),
    # a chain of suppressions: each box overlaps its neighbours above the threshold
    ("chain", 40, 0.0, (0, 0), None, 1, "vectorised"),
    ("chain", 200, 0.0, (0, 0), None, 1, "loop"),  # longer than the rounds allowed
    # one huge pile: more pairs than the loop would cost, so the loop runs
    (3000, 2, 2.0, (200, 300), 100, 1, "loop"),
]


@pytest.mark.parametrize("n, clusters, spread, size, max_keep, num_classes, path", CROWDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_nms_equals_greedy_loop(monkeypatch, seed, n, clusters, spread, size,
                                           max_keep, num_classes, path):
    from hanja_live import nms as nms_module

    rng = np.random.default_rng(seed)
    if n == "chain":
        # 10x10 boxes 2 px apart: IoU 0.67 with the next, 0.43 with the one after
        x = np.arange(clusters, dtype=np.float32) * 2.0
        boxes = np.stack([x, np.zeros_like(x), x + 10, np.full_like(x, 10)], axis=1)
        scores = np.linspace(1.0, 0.1, len(x)).astype(np.float32)
        classes = np.zeros(len(x), np.int64)
    else:
        boxes, which = clustered_boxes(rng, n, clusters, spread, size)
        # ties in score: the input order must break them, as in the loop
        scores = np.round(rng.uniform(0.25, 1.0, n), 2).astype(np.float32)
        classes = which % num_classes
    taken = []
    real = nms_module._greedy_vectorised

    def spy(*args):
        result = real(*args)
        taken.append("loop" if result is None else "vectorised")
        return result

    monkeypatch.setattr(nms_module, "_greedy_vectorised", spy)
    keep = nms(boxes, scores, 0.45, classes=classes, max_keep=max_keep)
    wide = np.asarray(boxes, np.float64) + (classes * (boxes.max() - boxes.min() + 1.0))[:, None]
    order = np.argsort(-scores, kind="stable")
    expected = nms_module._greedy_loop(wide, order, 0.45, len(boxes) if max_keep is None
                                       else max_keep)
    assert taken == [path]
    assert keep.tolist() == expected.tolist()
    if n == "chain":
        assert keep.tolist() == list(range(0, clusters, 2))  # every other box survives


def test_non_finite_box_is_handled_like_the_loop():
    boxes = np.array([[0, 0, 10, 10], [np.nan, 0, 10, 10], [1, 1, 11, 11], [30, 30, 40, 40]],
                     np.float32)
    scores = np.array([0.5, 0.9, 0.4, 0.3], np.float32)
    # the NaN box ranks first; its IoU with anything is NaN, which counts as overlapping
    assert nms(boxes, scores, 0.5).tolist() == [1]
