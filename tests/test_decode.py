"""Decoder: both head layouts against a plain per-box reference, hand-made cases, bad shapes."""

import numpy as np
import pytest

from hanja_live.decode import Decoder
from hanja_live.errors import ModelError
from hanja_live.letterbox import LetterboxTransform

NC = 10
IDENTITY = LetterboxTransform(1.0, 0.0, 0.0, (416, 416))
HD_416 = LetterboxTransform(0.325, 0.0, 91.0, (720, 1280))  # 1280x720 in 416x416


def reference_decode(output, layout, conf, iou, max_det, transform):
    """One box at a time, in float64: best class, threshold, greedy per-class NMS, map back."""
    rows = output[0] if layout == "anchor_based" else output[0].T
    candidates = []
    for row in rows:
        row = [float(v) for v in row]
        cx, cy, w, h = row[:4]
        if layout == "anchor_based":
            class_scores = [row[4] * s for s in row[5:]]
        else:
            class_scores = row[4:]
        best = 0
        for c in range(1, len(class_scores)):
            if class_scores[c] > class_scores[best]:
                best = c
        if class_scores[best] > conf:
            candidates.append((class_scores[best], best, (cx - w / 2, cy - h / 2,
                                                          cx + w / 2, cy + h / 2)))
    candidates.sort(key=lambda t: -t[0])

    def overlap(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
        return iw * ih / union if union > 0 else 0.0

    kept = []
    for score, cls, box in candidates:
        if len(kept) == max_det:
            break
        if all(k_cls != cls or overlap(box, k_box) <= iou for _, k_cls, k_box in kept):
            kept.append((score, cls, box))

    src_h, src_w = transform.src_hw
    boxes = []
    for _, _, (x1, y1, x2, y2) in kept:
        x1, x2 = [min(max((x - transform.pad_x) / transform.scale, 0.0), src_w) for x in (x1, x2)]
        y1, y2 = [min(max((y - transform.pad_y) / transform.scale, 0.0), src_h) for y in (y1, y2)]
        boxes.append((x1, y1, x2, y2))
    return (np.array(boxes, np.float64).reshape(-1, 4), np.array([k[0] for k in kept]),
            np.array([k[1] for k in kept], np.int64))


def random_output(rng, layout, n, dtype):
    cxcy = rng.uniform(-10, 426, (n, 2))
    wh = rng.uniform(4, 90, (n, 2))
    scores = rng.uniform(0, 1, (n, NC + (1 if layout == "anchor_based" else 0)))
    rows = np.concatenate([cxcy, wh, scores], axis=1)  # (n, 5 + nc) or (n, 4 + nc)
    table = rows if layout == "anchor_based" else rows.T
    return table[None].astype(dtype)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("layout", ["anchor_based", "anchor_free"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("conf, iou, max_det, transform", [
    (0.25, 0.45, 100, HD_416),
    (0.5, 0.3, 7, IDENTITY),
    (0.1, 0.7, 300, HD_416),
])
def test_random_outputs_match_reference(seed, layout, dtype, conf, iou, max_det, transform):
    rng = np.random.default_rng(seed)
    output = random_output(rng, layout, 400, dtype)
    # the metadata layout is left out: the shape alone must decide
    dets = Decoder(NC, conf=conf, iou=iou, max_det=max_det)(output, transform)
    boxes, scores, classes = reference_decode(output, layout, conf, iou, max_det, transform)

    assert 0 < len(boxes) <= max_det and len(dets) == len(boxes)
    assert dets.xyxy.dtype == np.float32 and dets.cls.dtype == np.int32
    np.testing.assert_array_equal(dets.cls, classes)
    np.testing.assert_allclose(dets.conf, scores, rtol=1e-6)
    np.testing.assert_allclose(dets.xyxy, boxes, atol=1e-3)


def raw_output(layout, boxes):
    """(1, N, 5+nc) or (1, 4+nc, N) from [(cx, cy, w, h, obj, {cls: score})]."""
    rows = np.zeros((max(len(boxes), 1), (5 if layout == "anchor_based" else 4) + NC), np.float32)
    first = 5 if layout == "anchor_based" else 4
    for i, (cx, cy, w, h, obj, cls_scores) in enumerate(boxes):
        rows[i, :4] = cx, cy, w, h
        if layout == "anchor_based":
            rows[i, 4] = obj
        for c, s in cls_scores.items():
            rows[i, first + c] = s
    return rows[None] if layout == "anchor_based" else rows.T[None].copy()


AB, AF = "anchor_based", "anchor_free"


@pytest.mark.parametrize(
    "layout, boxes, conf, max_det, transform, expected",
    [
        pytest.param(AF, [(50, 50, 20, 20, None, {3: 0.2})], 0.25, 100, IDENTITY, [],
                     id="free-below-threshold"),
        pytest.param(AF, [(50, 50, 20, 20, None, {3: 0.5})], 0.5, 100, IDENTITY, [],
                     id="free-equal-threshold-dropped"),
        pytest.param(AF, [(50, 50, 20, 20, None, {3: 0.2, 7: 0.9})], 0.25, 100, IDENTITY,
                     [(7, 0.9, (40, 40, 60, 60))], id="free-best-class"),
        # obj passes the threshold but obj x cls = 0.18 does not
        pytest.param(AB, [(50, 50, 20, 20, 0.9, {1: 0.2})], 0.25, 100, IDENTITY, [],
                     id="based-product-below"),
        pytest.param(AB, [(50, 50, 20, 20, 0.8, {1: 0.5, 2: 0.25})], 0.25, 100, IDENTITY,
                     [(1, 0.4, (40, 40, 60, 60))], id="based-score-is-product"),
        pytest.param(AB, [(50, 50, 20, 20, 0.9, {4: 0.9}), (52, 51, 20, 20, 0.9, {4: 0.8})],
                     0.25, 100, IDENTITY, [(4, 0.81, (40, 40, 60, 60))],
                     id="based-overlap-same-class-suppressed"),
        pytest.param(AF, [(52, 51, 20, 20, None, {4: 0.7}), (50, 50, 20, 20, None, {5: 0.8})],
                     0.25, 100, IDENTITY, [(5, 0.8, (40, 40, 60, 60)), (4, 0.7, (42, 41, 62, 61))],
                     id="free-overlap-other-class-kept"),
        pytest.param(AF, [(50, 50, 20, 20, None, {0: 0.6}), (150, 50, 20, 20, None, {0: 0.9}),
                          (250, 50, 20, 20, None, {0: 0.7})], 0.25, 2, IDENTITY,
                     [(0, 0.9, (140, 40, 160, 60)), (0, 0.7, (240, 40, 260, 60))],
                     id="free-max-det"),
        # 1280x720 in 416x416: x / 0.325, (y - 91) / 0.325
        pytest.param(AB, [(208, 208, 65, 13, 1.0, {9: 0.95})], 0.25, 100, HD_416,
                     [(9, 0.95, (540, 340, 740, 380))], id="based-mapped-to-source"),
        # reaches past the right edge and into the top padding: clipped to the 1280x720 frame
        pytest.param(AF, [(410, 91, 40, 40, None, {2: 0.9})], 0.25, 100, HD_416,
                     [(2, 0.9, (1200, 0, 1280, 20 / 0.325))], id="free-clipped"),
        pytest.param(AF, [], 0.25, 100, IDENTITY, [], id="free-nothing"),
    ],
)
def test_hand_made_cases(layout, boxes, conf, max_det, transform, expected):
    output = raw_output(layout, boxes)
    dets = Decoder(NC, conf=conf, iou=0.45, max_det=max_det, layout=layout)(output, transform)
    assert dets.cls.tolist() == [e[0] for e in expected]
    np.testing.assert_allclose(dets.conf, [e[1] for e in expected], rtol=1e-6)
    np.testing.assert_allclose(dets.xyxy, np.array([e[2] for e in expected]).reshape(-1, 4),
                               atol=1e-3)


@pytest.mark.parametrize(
    "shape, meta_layout, expected",
    [
        ((1, 25200, 15), None, "anchor_based"),
        ((1, 14, 8400), None, "anchor_free"),
        ((1, 14, 8400), "anchor_based", "anchor_free"),  # only one reading fits: the shape wins
        ((1, 0, 15), None, "anchor_based"),
        # (1, 14, 15) fits both: metadata decides, else the larger dim is taken as N
        ((1, 14, 15), None, "anchor_free"),
        ((1, 14, 15), "anchor_based", "anchor_based"),
        ((1, 14, 15), "anchor_free", "anchor_free"),
        ((1, 7, 100), None, "model output shape (1, 7, 100) does not fit 10 classes: expected "
                            "(1, N, 15) or (1, 14, N); is this a hanja_live model?"),
        ((1, 8400, 14), None, "does not fit 10 classes"),
        ((1, 15, 8400), None, "does not fit 10 classes"),
        ((2, 25200, 15), None, "model output shape (2, 25200, 15) does not fit"),
        ((25200, 15), None, "model output shape (25200, 15) does not fit"),
        ((1, 1, 25200, 15), None, "does not fit 10 classes"),
    ],
)
def test_layout_from_shape(shape, meta_layout, expected):
    decoder = Decoder(NC, layout=meta_layout)
    output = np.zeros(shape, np.float32)
    if expected in ("anchor_based", "anchor_free"):
        assert decoder.layout_for(shape) == expected
        assert len(decoder(output, IDENTITY)) == 0
    else:
        with pytest.raises(ModelError) as info:
            decoder(output, IDENTITY)
        assert expected in str(info.value)
        assert "\n" not in str(info.value)


def test_same_decoder_serves_repeated_frames():
    """Scratch buffers are reused: a second, different frame must not see the first one's boxes."""
    decoder = Decoder(NC, layout=AF)
    first = raw_output(AF, [(50, 50, 20, 20, None, {1: 0.9}), (150, 50, 20, 20, None, {2: 0.8})])
    second = raw_output(AF, [(250, 50, 20, 20, None, {3: 0.7}), (0, 0, 0, 0, None, {})])
    assert decoder(first, IDENTITY).cls.tolist() == [1, 2]
    dets = decoder(second, IDENTITY)
    assert dets.cls.tolist() == [3]
    np.testing.assert_allclose(dets.xyxy, [[240, 40, 260, 60]])
