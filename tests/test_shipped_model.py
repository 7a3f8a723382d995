"""The shipped model, run through the app's own detector on real rendered scenes with known boxes."""

import os

import numpy as np
import pytest

from hanja_live.app import load_detector
from hanja_live.config import load_config
from hanja_live.paths import PROJECT_DIR

MODEL = os.path.join(PROJECT_DIR, "models", "hanja_yolov5n.onnx")
FP16 = os.path.join(PROJECT_DIR, "models", "hanja_yolov5n.fp16.onnx")

pytestmark = pytest.mark.skipif(not os.path.isfile(MODEL), reason="models/hanja_yolov5n.onnx missing")


def _iou(a, b):
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _hits(detector, image, boxes):
    detections, _ = detector(image)
    return sum(any(int(c) == int(cls) and _iou(b, (x1, y1, x2, y2)) >= 0.5
                   for b, c in zip(detections.xyxy, detections.cls))
               for cls, x1, y1, x2, y2 in boxes)


def _detector(path):
    model = load_config(overrides={"model": {"path": path}}).model
    return load_detector(model)


@pytest.fixture(scope="module")
def scenes():
    compose = pytest.importorskip("hanja_live.train.compose")
    out = []
    for seed in range(24):
        image, boxes, _ = compose.make_sample(np.random.default_rng(1000 + seed), "test", size=(480, 640),
                                           layout="single")
        if len(boxes):
            out.append((image, boxes))
    return out


def test_finds_single_held_out_characters(scenes):
    detector = _detector(MODEL)
    hits = sum(_hits(detector, image, boxes[:1]) for image, boxes in scenes)
    # the shipped model finds 23 of the 24 (mAP50 over all layouts: see models/README.md)
    assert hits >= 0.75 * len(scenes), "%d of %d found" % (hits, len(scenes))


def test_fp16_model_agrees_with_fp32(scenes):
    if not os.path.isfile(FP16):
        pytest.skip("models/hanja_yolov5n.fp16.onnx missing")
    d32, d16 = _detector(MODEL), _detector(FP16)
    assert d16.backend.input.dtype == np.float16
    for image, _ in scenes[:8]:
        a, _ = d32(image)
        b, _ = d16(image)
        assert len(a) == len(b)
        np.testing.assert_array_equal(a.cls, b.cls)
        # the same boxes, up to NMS keeping a neighbouring candidate when float16 reorders near-equal
        # scores (seen: 2.2 px on a 131 px box)
        assert all(_iou(p, q) >= 0.95 for p, q in zip(a.xyxy, b.xyxy)), (a.xyxy, b.xyxy)
        np.testing.assert_allclose(a.conf, b.conf, atol=0.02)


def test_finds_small_characters_in_720p_frames():
    """Scattered characters of at most about 6 % of a 1280x720 frame's height, held-out ink.

    The shipped 480x832 input shows such a frame 1.3x larger than a square 640 input; the same
    weights exported at 640x640 found 56 of these 75 characters, the shipped file 66 (leg M's
    weights: 57 and 67, run 7's: 53 and 68; counted with this test's scenes)."""
    compose = pytest.importorskip("hanja_live.train.compose")
    detector = _detector(MODEL)
    h, w = detector.backend.input.shape[2:]
    assert abs(w / float(h) - 16 / 9.0) < 0.05, \
        "the shipped model's input %dx%d is not about 16:9 like the app's 1280x720 capture" % (w, h)
    found = total = 0
    for seed in range(16):
        image, boxes, _ = compose.make_sample(np.random.default_rng(2000 + seed), "test", size=(720, 1280),
                                           layout="scattered", small_share=1.0)
        found += _hits(detector, image, boxes)
        total += len(boxes)
    assert total >= 60
    assert found >= 0.8 * total, "%d of %d small characters found" % (found, total)
