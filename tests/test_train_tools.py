"""Training-side tools: evaluation metrics, ONNX metadata/FP16 export, pipeline plan, training.

Metrics are checked on real files (PNG images, YOLO label files, detect-style JSON lines)
against values worked out by hand; export on small ONNX graphs built with onnx.helper and run
in onnxruntime; training only where torch and ultralytics are installed.
"""

import csv
import json
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from hanja_live import CLASS_NAMES
from hanja_live.errors import ConfigError, HanjaLiveError, ModelError
from hanja_live.model_info import load_sidecar, model_info_from_mapping
from hanja_live.train import evaluate as ev

# ---------------------------------------------------------------------------------- evaluate

GT = (0, 10, 10, 60, 60)  # cls, x1, y1, x2, y2 in pixels of a 100x100 image


def det(cls, conf, x1, y1, x2, y2):
    return {"cls": cls, "label": CLASS_NAMES[cls] if cls < 10 else str(cls), "conf": conf,
            "box": [x1, y1, x2, y2]}


def write_split(root, images, label_lines=None):
    """images: {name: (gt boxes, detections)}; writes PNGs, YOLO labels and a JSONL file."""
    img_dir, lbl_dir = root / "images", root / "labels"
    img_dir.mkdir()
    lbl_dir.mkdir()
    with open(root / "dets.jsonl", "w", encoding="utf-8") as f:
        for name, (gts, dets) in images.items():
            cv2.imwrite(str(img_dir / name), np.full((100, 100, 3), 255, np.uint8))
            lines = ["%d %.6f %.6f %.6f %.6f" % (c, (x1 + x2) / 200, (y1 + y2) / 200,
                                                 (x2 - x1) / 100, (y2 - y1) / 100)
                     for c, x1, y1, x2, y2 in gts]
            (lbl_dir / (name[:-4] + ".txt")).write_text("\n".join(lines), encoding="utf-8")
            if dets is not None:
                f.write(json.dumps({"image": name, "detections": dets}) + "\n")
    for name, text in (label_lines or {}).items():
        (lbl_dir / name).write_text(text, encoding="utf-8")
    return root / "dets.jsonl", lbl_dir, img_dir


MISSED_AP = 51 / 101  # recall stops at 0.5: 51 of the 101 recall points have precision 1

EVAL_CASES = [
    # id, {image: (gt, detections)}, extra label files, expected report values or exception
    ("perfect", {"a.png": ([GT, (3, 60, 60, 90, 95)],
                           [det(0, 0.9, 10, 10, 60, 60), det(3, 0.8, 60, 60, 90, 95)])}, None,
     {"mAP50": 1.0, "mAP50_95": 1.0, "precision": 1.0, "recall": 1.0,
      "fp_per_empty_image": None}),
    ("fp_above_tp", {"a.png": ([GT], [det(0, 0.95, 70, 70, 95, 95), det(0, 0.9, 10, 10, 60, 60)])},
     None, {"mAP50": 0.5, "mAP50_95": 0.5, "precision": 0.5, "recall": 1.0}),
    ("fp_below_tp", {"a.png": ([GT], [det(0, 0.9, 10, 10, 60, 60), det(0, 0.5, 70, 70, 95, 95)])},
     None, {"mAP50": 1.0, "mAP50_95": 1.0, "precision": 0.5, "recall": 1.0}),
    ("duplicate", {"a.png": ([GT], [det(0, 0.9, 10, 10, 60, 60), det(0, 0.8, 11, 10, 61, 60)])},
     None, {"mAP50": 1.0, "precision": 0.5, "recall": 1.0}),
    ("missed", {"a.png": ([GT, (0, 70, 70, 95, 95)], [det(0, 0.9, 10, 10, 60, 60)])}, None,
     {"mAP50": MISSED_AP, "mAP50_95": MISSED_AP, "precision": 1.0, "recall": 0.5}),
    ("wrong_class", {"a.png": ([GT], [det(1, 0.9, 10, 10, 60, 60)])}, None,
     {"mAP50": 0.0, "mAP50_95": 0.0, "precision": 0.0, "recall": 0.0}),
    # shift 8 px: IoU 42*50 / (5000 - 2100) = 0.724 -> a hit at IoU 0.50 .. 0.70, 5 of 10
    ("offset_iou_0.72", {"a.png": ([GT], [det(0, 0.9, 18, 10, 68, 60)])}, None,
     {"mAP50": 1.0, "mAP50_95": 0.5, "precision": 1.0, "recall": 1.0}),
    # shift 20 px: IoU 30/70 = 0.43 -> a miss at every threshold
    ("offset_iou_0.43", {"a.png": ([GT], [det(0, 0.9, 30, 10, 80, 60)])}, None,
     {"mAP50": 0.0, "mAP50_95": 0.0, "precision": 0.0, "recall": 0.0}),
    ("below_conf", {"a.png": ([GT], [det(0, 0.1, 10, 10, 60, 60)])}, None,
     {"mAP50": 1.0, "precision": None, "recall": 0.0}),
    # class 5 has no target anywhere: left out of mAP, but its boxes are false positives
    ("empty_images_fp", {"a.png": ([GT], [det(0, 0.95, 10, 10, 60, 60)]),
                         "b.png": ([], [det(5, 0.9, 5, 5, 50, 50), det(5, 0.3, 50, 50, 90, 90),
                                        det(5, 0.1, 0, 0, 20, 20)]),
                         "c.png": ([], [])}, None,
     {"mAP50": 1.0, "mAP50_95": 1.0, "precision": 1 / 3, "recall": 1.0,
      "fp_per_empty_image": 1.0}),
    ("no_detect_line", {"a.png": ([GT], [det(0, 0.9, 10, 10, 60, 60)]), "b.png": ([GT], None)},
     None, {"mAP50": MISSED_AP, "recall": 0.5}),
    ("stray_image", {"a.png": ([GT], [det(0, 0.9, 10, 10, 60, 60)])},
     {"../dets.jsonl": '{"image": "zz.png", "detections": []}\n'}, HanjaLiveError),
    ("label_class_out_of_range", {"a.png": ([GT], [])}, {"a.txt": "12 0.5 0.5 0.2 0.2\n"},
     HanjaLiveError),
    ("label_short_line", {"a.png": ([GT], [])}, {"a.txt": "0 0.5 0.5 0.2\n"}, HanjaLiveError),
    # an ink-hull polygon (the data set's labels) is scored as its bounds, here GT's box
    ("label_polygon", {"a.png": ([GT], [det(0, 0.9, 10, 10, 60, 60)])},
     {"a.txt": "0 0.1 0.3 0.4 0.1 0.6 0.35 0.45 0.6 0.1 0.5\n"},
     {"mAP50": 1.0, "mAP50_95": 1.0, "precision": 1.0, "recall": 1.0}),
    ("label_polygon_odd", {"a.png": ([GT], [])}, {"a.txt": "0 0.1 0.3 0.4 0.1 0.6 0.35 0.45\n"},
     HanjaLiveError),
    ("box_of_three", {"a.png": ([GT], [{"cls": 0, "conf": 0.9, "box": [1, 2, 3]}])}, None,
     HanjaLiveError),
]


@pytest.mark.parametrize("images,extra,expected", [c[1:] for c in EVAL_CASES],
                         ids=[c[0] for c in EVAL_CASES])
def test_evaluate_metrics(tmp_path, images, extra, expected):
    jsonl, labels, imgs = write_split(tmp_path, images, extra)
    if isinstance(expected, type):
        with pytest.raises(expected):
            ev.evaluate_jsonl(jsonl, labels, imgs, CLASS_NAMES)
        return
    report = ev.evaluate_jsonl(jsonl, labels, imgs, CLASS_NAMES, conf_threshold=0.25)
    for key, value in expected.items():
        if value is None:
            assert report[key] is None, key
        else:
            assert report[key] == pytest.approx(value, abs=1e-6), key
    json.dumps(report, ensure_ascii=False)  # the report must be writable as JSON
    assert ev.format_report(report).count("\n") == len(CLASS_NAMES) + 6


UNLABELLED = (2, 60, 5, 95, 40)  # a numeral the labels leave out (ignore/), cls x1 y1 x2 y2

IGNORE_CASES = [
    # id, {image: (gt, detections)}, {image: unlabelled boxes} -> expected report values
    # a detection on it is dropped, whatever its class: neither a hit nor a false positive
    ("on_unlabelled", {"a.png": ([GT], [det(0, 0.9, 10, 10, 60, 60), det(7, 0.8, 61, 5, 95, 41)])},
     {"a.png": [UNLABELLED]}, {"precision": 1.0, "mAP50": 1.0}, (1, 1, 0)),
    # on a target-free image it would have been a false positive of that image
    ("target_free", {"a.png": ([GT], [det(0, 0.9, 10, 10, 60, 60)]),
                     "b.png": ([], [det(2, 0.7, 60, 5, 95, 40), det(4, 0.6, 0, 60, 30, 95)])},
     {"b.png": [UNLABELLED]}, {"fp_per_empty_image": 1.0}, (1, 1, 1)),
    # IoU 0.41 with the unlabelled box (shifted 15 px): a false positive as before
    ("beside_unlabelled", {"a.png": ([], [det(2, 0.7, 75, 5, 110, 40)])}, {"a.png": [UNLABELLED]},
     {"fp_per_empty_image": 1.0}, (0, 0, 0)),
    # a detection that hits a target stays a hit even where an unlabelled box overlaps it
    ("hit_stays", {"a.png": ([GT], [det(0, 0.9, 10, 10, 60, 60)])}, {"a.png": [GT]},
     {"recall": 1.0, "precision": 1.0}, (0, 0, 0)),
    # B (0.8) loses GT to A (0.9, IoU 0.52) at IoU 0.5 but wins it at 0.55-0.70 (IoU 0.74): kept, though
    # it also lies on an unlabelled numeral, so that mAP50-95 keeps its hits
    ("hit_at_a_higher_iou", {"a.png": ([GT], [det(0, 0.9, 26, 10, 76, 60), det(0, 0.8, 10, 10, 60, 78)])},
     {"a.png": [(2, 10, 10, 60, 78)]}, {"precision": 0.5, "mAP50": 1.0}, (0, 0, 0)),
    # below the threshold: dropped from the curve, not counted at the operating point
    ("below_conf", {"a.png": ([], [det(2, 0.1, 60, 5, 95, 40)])}, {"a.png": [UNLABELLED]},
     {"fp_per_empty_image": 0.0}, (1, 0, 0)),
]


@pytest.mark.parametrize("images, unlabelled, expected, dropped", [c[1:] for c in IGNORE_CASES],
                         ids=[c[0] for c in IGNORE_CASES])
def test_evaluate_drops_detections_on_unlabelled_numerals(tmp_path, images, unlabelled, expected, dropped):
    jsonl, labels, imgs = write_split(tmp_path, images)
    ignore = tmp_path / "ignore"
    ignore.mkdir()
    for name, boxes in unlabelled.items():
        (ignore / (name[:-4] + ".txt")).write_text("".join(
            "%d %.6f %.6f %.6f %.6f\n" % (c, (x1 + x2) / 200, (y1 + y2) / 200, (x2 - x1) / 100, (y2 - y1) / 100)
            for c, x1, y1, x2, y2 in boxes), encoding="utf-8")
    strict = ev.evaluate_jsonl(jsonl, labels, imgs, CLASS_NAMES)
    report = ev.evaluate_jsonl(jsonl, labels, imgs, CLASS_NAMES, ignore_dir=ignore)
    for key, value in expected.items():
        assert report[key] == pytest.approx(value, abs=1e-6), key
    un = report["unlabelled_numerals"]
    assert (un["detections_dropped"], un["dropped_at_conf"], un["dropped_on_empty_images_at_conf"]) == dropped
    assert un["numerals"] == sum(len(b) for b in unlabelled.values())
    # counting them again gives the strict figure
    assert un["fp_per_empty_image_counting_them"] == strict["fp_per_empty_image"]
    assert strict["unlabelled_numerals"] is None
    assert "unlabelled numerals" in ev.format_report(report)
    assert "no ignore/ folder" in ev.format_report(strict)


T, F = True, False
# conf, tp50, on_empty per detection; 4 targets, 2 target-free images
AT_RECALL_CASES = [
    # the highest threshold that keeps half the targets is 0.8; the empty-page box at 0.85 counts
    ("half", [0.9, 0.85, 0.8, 0.5, 0.3], [T, F, T, T, F], [F, T, F, F, T], 0.5,
     {"conf": 0.8, "recall_kept": 0.5, "fp_per_empty_image": 0.5, "precision": 2 / 3}),
    ("three_quarters", [0.9, 0.85, 0.8, 0.5, 0.3], [T, F, T, T, F], [F, T, F, F, T], 0.75,
     {"conf": 0.5, "recall_kept": 0.75, "fp_per_empty_image": 0.5, "precision": 0.75}),
    # a false positive tied with the threshold is kept, as the app keeps it
    ("tie", [0.9, 0.6, 0.6], [T, T, F], [F, F, T], 0.5,
     {"conf": 0.6, "recall_kept": 0.5, "fp_per_empty_image": 0.5, "precision": 2 / 3}),
    ("unreachable", [0.9, 0.8], [T, F], [F, T], 0.5, None),  # one of 4 targets found at best
    ("no_detections", [], [], [], 0.5, None),
]


@pytest.mark.parametrize("conf, tp50, on_empty, recall, expected", [c[1:] for c in AT_RECALL_CASES],
                         ids=[c[0] for c in AT_RECALL_CASES])
def test_at_recall(conf, tp50, on_empty, recall, expected):
    got = ev.at_recall(np.array(conf, float), np.array(tp50, bool), np.array(on_empty, bool), 4, 2, recall)
    if expected is None:
        assert got is None
    else:
        assert got == {"recall": recall, **{k: pytest.approx(v) for k, v in expected.items()}}


def test_evaluate_reports_false_positives_at_equal_recall(tmp_path):
    # two targets; the empty page's box (0.8) outscores the second hit (0.7): keeping both targets
    # costs one false positive per target-free image, keeping one costs none
    jsonl, labels, imgs = write_split(tmp_path, {
        "a.png": ([GT, (1, 70, 70, 95, 95)], [det(0, 0.9, 10, 10, 60, 60), det(1, 0.7, 70, 70, 95, 95)]),
        "b.png": ([], [det(3, 0.8, 5, 5, 50, 50)]),
    })
    report = ev.evaluate_jsonl(jsonl, labels, imgs, CLASS_NAMES, fp_at_recalls=(0.5, 1.0))
    half, whole = report["at_recall"]
    assert (half["conf"], half["fp_per_empty_image"], half["precision"]) == (0.9, 0.0, 1.0)
    assert (whole["conf"], whole["fp_per_empty_image"]) == (0.7, 1.0)
    assert whole["precision"] == pytest.approx(2 / 3)
    text = ev.format_report(report)
    assert "recall 0.5 at conf 0.900: 0.000 false positives per target-free image" in text


def test_evaluate_per_class_and_counts(tmp_path):
    jsonl, labels, imgs = write_split(tmp_path, {
        "a.png": ([GT], [det(1, 0.9, 10, 10, 60, 60)]),
        "b.png": ([], [det(1, 0.8, 0, 0, 30, 30)]),
    })
    report = ev.evaluate_jsonl(jsonl, labels, imgs, CLASS_NAMES)
    rows = {row["cls"]: row for row in report["per_class"]}
    assert rows[0]["targets"] == 1 and rows[0]["AP50"] == 0.0 and rows[0]["recall"] == 0.0
    assert rows[1]["targets"] == 0 and rows[1]["AP50"] is None and rows[1]["precision"] == 0.0
    assert rows[1]["name"] == "二"
    assert report["counts"] == {
        "images": 2, "images_with_targets": 1, "images_without_targets": 1,
        "images_without_detect_line": 0, "targets": 1, "detections": 2,
        "detections_at_conf": 2, "tp_at_conf": 0, "fp_at_conf": 2, "fn_at_conf": 1,
        "fp_on_empty_images_at_conf": 1}


def test_evaluate_recall_by_size(tmp_path):
    # 100x100 images: a 50-px target (0.5 of the height) found, a 3-px one (3 %) missed, a 2-px
    # one (2 %) found only below the threshold, a 5-px one (5 %) found
    jsonl, labels, imgs = write_split(tmp_path, {
        "a.png": ([GT, (1, 80, 80, 83, 83), (2, 90, 5, 92, 7)],
                  [det(0, 0.9, 10, 10, 60, 60), det(2, 0.1, 90, 5, 92, 7)]),
        "b.png": ([(3, 20, 20, 25, 25)], [det(3, 0.7, 20, 20, 25, 25)]),
    })
    report = ev.evaluate_jsonl(jsonl, labels, imgs, CLASS_NAMES, conf_threshold=0.25)
    got = [(b["min"], b["max"], b["targets"], b["recall"]) for b in report["recall_by_size"]]
    assert got == [(0.0, 0.025, 1, 0.0), (0.025, 0.04, 1, 0.0), (0.04, 0.06, 1, 1.0),
                   (0.06, 0.1, 0, None), (0.1, 0.2, 0, None), (0.2, None, 1, 1.0)]
    found = sum(b["targets"] * (b["recall"] or 0) for b in report["recall_by_size"])
    assert found == report["counts"]["tp_at_conf"] == 2
    assert "recall by size" in ev.format_report(report) and ">= 20 %: 1.000 of 1" in ev.format_report(report)
    # at threshold 0 a missed target must stay missed (the 3-px one has no match at all)
    report = ev.evaluate_jsonl(jsonl, labels, imgs, CLASS_NAMES, conf_threshold=0.0)
    found = sum(b["targets"] * (b["recall"] or 0) for b in report["recall_by_size"])
    assert found == report["counts"]["tp_at_conf"] == 3


def test_evaluate_cli_reuses_jsonl(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.yaml").write_text(yaml.safe_dump({"names": dict(enumerate(CLASS_NAMES))},
                                                   allow_unicode=True), encoding="utf-8")
    split = data / "split"
    split.mkdir()
    jsonl, labels, imgs = write_split(split, {"a.png": ([GT], [det(0, 0.9, 10, 10, 60, 60)])})
    (data / "images").mkdir()
    (data / "labels").mkdir()
    imgs.rename(data / "images" / "test")
    labels.rename(data / "labels" / "test")
    out = tmp_path / "report.json"
    ev.main(["--model", "unused.onnx", "--data", str(data), "--out", str(out),
             "--jsonl", str(jsonl), "--reuse"])
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["mAP50_95"] == 1.0 and report["split"] == "test"
    assert "一" in capsys.readouterr().out


# ------------------------------------------------------------------------------------ export

try:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from hanja_live.train import export as ex
except ImportError as exc:
    onnx = None
    ONNX_MISSING = "export tests need onnx and onnxruntime (pip install -e .[test,onnxruntime]): %s" % exc
needs_onnx = pytest.mark.skipif(onnx is None, reason=ONNX_MISSING if onnx is None else "")


def tiny_detector(kind, h=64, w=96, dynamic=False, seed=0):
    """1x3xHxW -> stride-32 1x1 conv -> (1, C, N) or (1, N, C), as a YOLO head lays it out."""
    channels = {"anchor_free": 14, "anchor_based": 15, "neither": 7}[kind]
    n = (h // 32) * (w // 32)
    rng = np.random.default_rng(seed)
    weight = helper.make_tensor("w", TensorProto.FLOAT, [channels, 3, 1, 1],
                                rng.normal(0, 0.5, channels * 3).astype(np.float32))
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [1, channels, n])
    nodes = [helper.make_node("Conv", ["images", "w"], ["feat"], strides=[32, 32]),
             helper.make_node("Reshape", ["feat", "shape"], ["flat"])]
    if kind == "anchor_based":
        nodes.append(helper.make_node("Transpose", ["flat"], ["output0"], perm=[0, 2, 1]))
        out_shape = [1, n, channels]
    else:
        nodes.append(helper.make_node("Sigmoid", ["flat"], ["output0"]))
        out_shape = [1, channels, n]
    in_shape = ["batch" if dynamic else 1, 3, h, w]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)],
        [weight, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 10
    helper.set_model_props(model, {"names": "{0: 'x'}", "author": "ultralytics"})
    return model


EXPORT_CASES = [
    # id, kind, dynamic input, stride, expected layout or exception
    ("anchor_free", "anchor_free", False, 32, "anchor_free"),
    ("anchor_based", "anchor_based", False, 32, "anchor_based"),
    ("output_fits_neither", "neither", False, 32, ModelError),
    ("dynamic_batch", "anchor_free", True, 32, ModelError),
    ("size_not_multiple_of_stride", "anchor_free", False, 64, ModelError),
]


@needs_onnx
@pytest.mark.parametrize("kind,dynamic,stride,expected", [c[1:] for c in EXPORT_CASES],
                         ids=[c[0] for c in EXPORT_CASES])
def test_export_metadata_read_by_app(tmp_path, kind, dynamic, stride, expected):
    model = tiny_detector(kind, dynamic=dynamic)
    path = tmp_path / "m.onnx"
    if isinstance(expected, type):
        with pytest.raises(expected):
            ex.save_model(model, path, CLASS_NAMES, stride, "fp32", {"date": "today"})
        assert not path.exists()
        return
    ex.save_model(model, path, CLASS_NAMES, stride, "fp32",
                  {"date": "2024-01-01", "source_weights": "best.pt"})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    info = model_info_from_mapping(meta, str(path))
    assert info.names == CLASS_NAMES
    assert info.input_hw == (64, 96) and info.stride == 32 and info.layout == expected
    assert json.loads(meta["names"]) == list(CLASS_NAMES)
    assert "一" in meta["names"]  # JSON kept the characters, no \\u escapes
    assert meta["source_weights"] == "best.pt" and "author" not in meta
    assert load_sidecar(str(path)) == info
    assert yaml.safe_load((tmp_path / "m.yaml").read_text(encoding="utf-8"))["date"] == "2024-01-01"
    saved = onnx.load(str(path))
    assert saved.ir_version == 7  # ONNX 1.7's IR carries opset 12
    out = sess.run(None, {"images": np.zeros((1, 3, 64, 96), np.float32)})[0]
    assert out.shape == ((1, 14, 6) if expected == "anchor_free" else (1, 6, 15))


# float32 outputs with two candidates: the first scores 0.9, the second 0.1 (anchor_free) / 0.3 x 0.9
# and 0.1 x 0.9 (anchor_based); boxes (cx, cy, w, h) in pixels
FREE = [[[400.0, 400.0], [50.0, 300.0], [20.0, 600.0], [30.0, 500.0], [0.9, 0.1], [0.05, 0.02]]]
BASED = [[[400.0, 50.0, 20.0, 30.0, 0.3, 0.9, 0.05], [400.0, 300.0, 600.0, 500.0, 0.1, 0.9, 0.02]]]


def _changed(output, changes):
    out = np.array(output)
    for (i, j), delta in changes.items():
        out[0, i, j] += delta
    return out


@pytest.mark.parametrize("layout, output, changes, gap, ok", [
    ("anchor_free", FREE, {}, 0.0, True),
    ("anchor_free", FREE, {(0, 0): 0.3}, 0.3, True),       # a kept box's centre 0.3 px off (box 20x30)
    ("anchor_free", FREE, {(0, 0): 2.0}, 2.0, False),      # 2 px off at cx 400: far for a 30 px box
    ("anchor_free", FREE, {(2, 0): 2.0}, 2.0, False),      # a kept box 2 px wider
    ("anchor_free", FREE, {(2, 1): 10.0}, 0.0, True),      # a dropped candidate's 600 px box: not checked
    ("anchor_free", FREE, {(4, 1): 0.005}, 0.005, True),   # scores within 0.01
    ("anchor_free", FREE, {(5, 1): 0.05}, 0.05, False),    # a score 0.05 off, on any candidate
    ("anchor_based", BASED, {(0, 0): 2.0}, 2.0, False),    # kept: 0.3 x 0.9 = 0.27
    ("anchor_based", BASED, {(1, 2): 10.0}, 0.0, True),    # dropped: 0.1 x 0.9
    ("anchor_based", BASED, {(1, 4): 0.05}, 0.05, False),  # objectness is a score too
])
def test_fp16_gap_checks_scores_and_kept_boxes(layout, output, changes, gap, ok):
    got = ex.fp16_gap(np.array(output), _changed(output, changes), layout)
    assert got[0] == pytest.approx(gap) and got[1] is ok


@needs_onnx
def test_fp16_copy_close_to_fp32(tmp_path):
    pytest.importorskip("onnxruntime.transformers.float16")
    src, dst = tmp_path / "m.onnx", tmp_path / "m.fp16.onnx"
    ex.save_model(tiny_detector("anchor_free", seed=3), src, CLASS_NAMES, 32, "fp32",
                  {"source_weights": "best.pt"})
    meta = ex.convert_fp16(src, dst)
    sess16 = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    sess32 = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    assert sess16.get_inputs()[0].type == "tensor(float16)"
    x = np.random.default_rng(1).random((1, 3, 64, 96), dtype=np.float32)
    a = sess32.run(None, {"images": x})[0]
    b = sess16.run(None, {"images": x.astype(np.float16)})[0]
    assert b.dtype == np.float16
    np.testing.assert_allclose(b.astype(np.float32), a, atol=2e-3, rtol=2e-3)
    got = sess16.get_modelmeta().custom_metadata_map
    assert got["precision"] == "fp16" and got["source_weights"] == "best.pt"
    assert got["fp16_from"] == "m.onnx" and float(got["fp16_max_abs_diff"]) < 2e-3
    assert meta["names"] == got["names"]
    assert load_sidecar(str(dst)).names == CLASS_NAMES


# ---------------------------------------------------------------------------------- pipeline

def test_pipeline_plan_skips_done_stages_and_resumes(tmp_path, capsys):
    from hanja_live.train import pipeline

    out = tmp_path / "run"
    argv = ["--out", str(out), "--train", "10", "--val", "2", "--test", "3", "--epochs", "5",
            "--device", "0", "--dry-run"]
    pipeline.main(argv)
    text = capsys.readouterr().out
    order = [text.index("hanja_live.train." + m) for m in ("dataset", "train", "export",
                                                           "evaluate")]
    assert order == sorted(order)
    assert "--train 10 --val 2 --test 3 --seed 0" in text and "--device 0" in text
    # training images small, test frames as a 720p camera delivers them
    assert "--size 640 --test-size 1280" in text
    assert text.count("hanja_live.train.evaluate") == 2  # fp32 and fp16

    plan = pipeline.Plan(out, "yolov5n")
    plan.stages.mkdir(parents=True)
    plan.marker("generate").write_text("{}", encoding="utf-8")
    plan.last.parent.mkdir(parents=True)
    plan.last.write_bytes(b"")
    pipeline.main(argv)
    text = capsys.readouterr().out
    assert "generate done before, skipped" in text and "hanja_live.train.dataset" not in text
    assert "--resume" in text

    pipeline.main(argv + ["--redo", "generate"])
    text = capsys.readouterr().out
    assert "hanja_live.train.dataset" in text
    assert "--resume" not in text  # new data: the interrupted run is not continued

    # a finished stage whose settings changed is kept, with a warning naming --redo
    commands = pipeline.stage_commands(plan, pipeline.build_parser().parse_args(argv))
    resumed = [commands["train"][0] + ["--resume"]]  # recorded as run; still the same settings
    plan.marker("train").write_text(json.dumps({"commands": resumed}), encoding="utf-8")
    plan.marker("export").write_text(json.dumps({"commands": commands["export"]}), encoding="utf-8")
    pipeline.main(argv)
    assert "warning: export ran with other settings" not in capsys.readouterr().out
    pipeline.main(argv + ["--export-imgsz", "480", "832"])
    text = capsys.readouterr().out
    assert "export done before, skipped" in text
    assert "warning: export ran with other settings than these" in text and "--redo export" in text


@pytest.mark.parametrize("extra, export_imgsz", [
    ([], "--imgsz 640 --out"),  # default: the training size
    (["--export-imgsz", "480", "832"], "--imgsz 480 832 --out"),
    (["--export-imgsz", "512"], "--imgsz 512 --out"),
    (["--export-imgsz", "32", "64", "96"], "takes one number or two"),
    (["--export-imgsz", "480", "840"], "give multiples of 32"),
    (["--export-imgsz", "0"], "give multiples of 32"),
])
def test_pipeline_exports_at_the_asked_input(tmp_path, capsys, extra, export_imgsz):
    from hanja_live.train import pipeline

    argv = ["--out", str(tmp_path / "run"), "--imgsz", "640", "--dry-run"] + extra
    if not export_imgsz.startswith("--imgsz"):
        with pytest.raises(SystemExit):
            pipeline.main(argv)
        assert export_imgsz in capsys.readouterr().err
        return
    pipeline.main(argv)
    text = capsys.readouterr().out.splitlines()
    export = [ln for ln in text if "hanja_live.train.export" in ln]
    train = [ln for ln in text if "hanja_live.train.train" in ln]
    assert len(export) == 1 and export_imgsz in export[0]
    assert len(train) == 1 and "--imgsz 640 " in train[0]  # training stays square


# ---------------------------------------------------------------------------------- training

class _EpochLoop(object):
    """The parts of ultralytics' trainer that TimedMosaicClose touches, on a fake clock."""

    def __init__(self, hours):
        self.args = types.SimpleNamespace(time=hours)
        self.start_epoch, self.train_time_start, self.now = 0, 0.0, 0.0
        self.epoch, self.closed_at, self.resets = 0, [], 0
        self.train_loader = self

    def _close_dataloader_mosaic(self):
        self.closed_at.append(self.epoch)

    def reset(self):
        self.resets += 1


@pytest.mark.parametrize("durations, budget, closes_at", [
    # seconds per epoch (the last repeats), time budget in seconds, epoch whose start closes mosaic
    ([10], 100, 9),  # 10 epochs fit: the last one without mosaic
    ([11], 100, 8),  # the run stops 1 s into epoch 9, so 8 closes: 12 s without mosaic, not 1
    ([1], 100, 90),  # 100 fit: the last 10
    ([5], 600, 108),  # 120 fit: the last 12 (60 s)
    ([60], 100, 1),  # a second, partial epoch only: it goes without mosaic
    ([150], 100, None),  # one epoch, cut short: no mean yet, mosaic stays
    ([30, 10], 100, 6),  # a slow first epoch (caching) inflates the mean: 20 s without mosaic
])
def test_timed_run_closes_mosaic_for_its_last_tenth(durations, budget, closes_at):
    from hanja_live.train.train import TimedMosaicClose

    loop = _EpochLoop(budget / 3600.0)
    callback = TimedMosaicClose(clock=lambda: loop.now)
    epoch = 0
    while loop.now < budget:  # ultralytics stops mid-epoch once the time is up
        loop.epoch = epoch
        callback(loop)
        loop.now += durations[min(epoch, len(durations) - 1)]
        epoch += 1
    assert loop.closed_at == ([] if closes_at is None else [closes_at])
    assert loop.resets == len(loop.closed_at)


def test_resumed_run_counts_epochs_from_where_it_resumed():
    from hanja_live.train.train import TimedMosaicClose

    loop = _EpochLoop(100 / 3600.0)
    callback = TimedMosaicClose(clock=lambda: loop.now)
    loop.start_epoch = loop.epoch = 30  # resumed: this session's first epoch gives no mean yet
    callback(loop)
    loop.epoch, loop.now = 38, 80.0  # eight 10 s epochs later, 20 s left: not yet
    callback(loop)
    loop.epoch, loop.now = 39, 90.0
    callback(loop)
    assert loop.closed_at == [39]


def test_schedule_args_by_run_length():
    from hanja_live.train.train import TimedMosaicClose, schedule_args

    assert schedule_args(60, None) == ({"mosaic": 1.0, "close_mosaic": 6}, {})
    assert schedule_args(5, None) == ({"mosaic": 1.0, "close_mosaic": 1}, {})
    assert schedule_args(5, None, mosaic=False) == ({"mosaic": 0.0, "close_mosaic": 0}, {})
    assert schedule_args(5, 0.1, mosaic=False) == ({"time": 0.1, "mosaic": 0.0, "close_mosaic": 0}, {})
    timed, callbacks = schedule_args(60, 0.1)
    assert timed == {"time": 0.1, "mosaic": 1.0, "close_mosaic": 0}  # ultralytics' --epochs count stands down
    assert list(callbacks) == ["on_train_epoch_start"]
    assert isinstance(callbacks["on_train_epoch_start"], TimedMosaicClose)
    assert schedule_args(60, 0.1)[1]["on_train_epoch_start"] is not callbacks["on_train_epoch_start"]


def write_tiny_dataset(root, n_train=4, n_val=2, size=64):
    """White squares with 1..3 dark bars per class 0..2, labelled in YOLO form."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            img = np.full((size, size, 3), 255, np.uint8)
            cls = i % 3
            x1, y1 = rng.integers(4, 20, 2)
            x2, y2 = x1 + 30, y1 + 30
            for k in range(cls + 1):
                y = y1 + 5 + k * 10
                cv2.line(img, (int(x1), int(y)), (int(x2), int(y)), (0, 0, 0), 3)
            cv2.imwrite(str(root / "images" / split / f"{i}.png"), img)
            (root / "labels" / split / f"{i}.txt").write_text(
                f"{cls} {(x1 + x2) / 2 / size} {(y1 + y2) / 2 / size} {30 / size} {30 / size}\n")
    data = {"path": str(root), "train": "images/train", "val": "images/val",
            "names": dict(enumerate(CLASS_NAMES))}
    (root / "data.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return root / "data.yaml"


@pytest.fixture
def cpu_training(tmp_path, monkeypatch):
    """tmp_path as the working folder of an ultralytics run on the CPU; skips without torch."""
    pytest.importorskip("torch", reason="training needs torch (pip install -e .[train])")
    pytest.importorskip("ultralytics", reason="training needs ultralytics (pip install -e .[train])")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics_cfg"))
    monkeypatch.chdir(tmp_path)


@needs_onnx
@pytest.mark.parametrize("size, scale", [("yolov5n", "n"), ("yolov5s", "s")])  # the issue's two sizes
def test_train_one_epoch_on_cpu_then_export(tmp_path, cpu_training, size, scale):
    import torch
    from hanja_live.train.train import train

    data_yaml = write_tiny_dataset(tmp_path / "data")
    best = train(str(data_yaml), model=size, imgsz=64, epochs=1, batch=2, workers=0,
                 project="runs", name="tiny", device="cpu")
    assert best.is_file() and best.parent == tmp_path / "runs" / "tiny" / "weights"
    network = torch.load(best, map_location="cpu", weights_only=False)["model"]
    assert network.yaml["scale"] == scale and network.yaml["nc"] == len(CLASS_NAMES)

    result = ex.export(best, (64, 64), tmp_path / "m.onnx", fp16_out=tmp_path / "m.fp16.onnx")
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    info = model_info_from_mapping(sess.get_modelmeta().custom_metadata_map, "m.onnx")
    assert info.names == CLASS_NAMES and info.input_hw == (64, 64)
    assert info.stride == 32 and info.layout == "anchor_free"
    out = sess.run(None, {sess.get_inputs()[0].name: np.zeros((1, 3, 64, 64), np.float32)})[0]
    assert out.shape == (1, 4 + len(CLASS_NAMES), 4 * 4 + 2 * 2 + 8 * 8)
    assert result["fp16_metadata"]["precision"] == "fp16"


def test_timed_training_on_cpu_ends_without_mosaic(tmp_path, monkeypatch, cpu_training):
    from hanja_live.train import train as train_module

    closed = []  # the epoch at whose start our callback switched mosaic off

    class Recorded(train_module.TimedMosaicClose):
        def __call__(self, trainer):
            was = self.closed
            super().__call__(trainer)
            if self.closed and not was:
                closed.append(trainer.epoch)

    monkeypatch.setattr(train_module, "TimedMosaicClose", Recorded)
    data_yaml = write_tiny_dataset(tmp_path / "data", n_train=8)
    # a 14 s budget fits a few dozen sub-second epochs; --epochs 200 (20 without mosaic) must not decide
    train_module.train(str(data_yaml), model="yolov5n", imgsz=64, epochs=200, hours=0.004, batch=4,
                       workers=0, project="runs", name="timed", device="cpu")
    with open(str(tmp_path / "runs" / "timed" / "results.csv")) as f:
        ends = [float(row["time"]) for row in csv.DictReader(f, skipinitialspace=True)]  # s since start
    epochs = len(ends)
    assert epochs >= 3, "the budget fitted only %d epochs; the machine is too slow for this check" % epochs
    assert len(closed) == 1, closed
    # the time from the switch on is the last ~10 % of the run's, to within about an epoch (the
    # decision falls at epoch starts); counted in epochs it may be more: those without mosaic are quicker
    after, mean = ends[-1] - ends[closed[0] - 1], ends[-1] / epochs
    assert abs(after - 0.1 * ends[-1]) <= 1.5 * mean, (closed, epochs, after, ends[-1])


def test_no_mosaic_training_on_cpu(tmp_path, cpu_training):
    from hanja_live.train.train import main

    data_yaml = write_tiny_dataset(tmp_path / "data")
    main(["--data", str(data_yaml), "--imgsz", "64", "--epochs", "1", "--batch", "2", "--workers", "0",
          "--project", "runs", "--name", "whole", "--device", "cpu", "--no-mosaic", "--save-period", "1"])
    args = yaml.safe_load((tmp_path / "runs" / "whole" / "args.yaml").read_text())
    assert (args["mosaic"], args["close_mosaic"]) == (0.0, 0)
    assert [p.name for p in (tmp_path / "runs" / "whole" / "weights").glob("epoch*.pt")] == ["epoch0.pt"]  # ultralytics counts from 0


def test_init_weights_start_from_every_tensor_of_the_checkpoint(tmp_path, monkeypatch, cpu_training):
    import torch
    from hanja_live.train import train as train_module

    data_yaml = write_tiny_dataset(tmp_path / "data")
    first = train_module.train(str(data_yaml), model="yolov5n", imgsz=64, epochs=1, batch=2,
                               workers=0, project="runs", name="first", device="cpu")
    ckpt = torch.load(str(first), map_location="cpu", weights_only=False)
    held = (ckpt.get("ema") or ckpt["model"]).float().state_dict()

    three = tmp_path / "three.yaml"
    spec = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    three.write_text(yaml.safe_dump(dict(spec, names=dict(enumerate(CLASS_NAMES[:3]))),
                                    allow_unicode=True), encoding="utf-8")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    for model, data, start, message in [
            ("yolov5s", data_yaml, first, "is a yolov5n network, not --model yolov5s"),
            ("yolov5n", three, first, "predicts 10 classes but"),
            ("yolov5n", data_yaml, bad, "is not a readable torch checkpoint"),
            ("yolov5n", data_yaml, tmp_path / "absent.pt", "does not exist")]:
        with pytest.raises(ConfigError, match=message):
            train_module.train(str(data), model=model, imgsz=64, epochs=1, batch=2, workers=0,
                               project="runs", name="refused", device="cpu", init_weights=str(start))

    started = {}
    real = train_module.schedule_args

    def recording(*args, **kwargs):
        schedule, callbacks = real(*args, **kwargs)
        assert "on_train_start" not in callbacks
        callbacks = dict(callbacks, on_train_start=lambda trainer: started.update(
            {k: v.detach().float().cpu().clone() for k, v in trainer.model.state_dict().items()}))
        return schedule, callbacks

    monkeypatch.setattr(train_module, "schedule_args", recording)
    train_module.train(str(data_yaml), model="yolov5n", imgsz=64, epochs=1, batch=2, workers=0,
                       project="runs", name="again", device="cpu", init_weights=str(first))
    assert started.keys() == held.keys()
    # what this guards: ultralytics' ``pretrained`` path leaves yolov5n's 36 class-branch tensors random
    differ = [k for k in held if not torch.equal(started[k], held[k].float())]
    assert differ == [], differ


def test_seed_sets_the_training_data_order_and_augmentation(tmp_path, cpu_training):
    """--seed reaches ultralytics' training loader, whose generator it seeds with a constant."""
    import torch
    from hanja_live.train.offline import prepare_ultralytics

    prepare_ultralytics()
    from hanja_live.train.train import AUGMENT, _trainer_class

    data_yaml = write_tiny_dataset(tmp_path / "data", n_train=8)
    trainer_class = _trainer_class(amp_check=False)

    def first_epoch(seed, ours=True):
        trainer = trainer_class(overrides=dict(
            model="yolov5n.yaml", data=str(data_yaml), imgsz=64, batch=2, device="cpu", seed=seed,
            project="runs", name="seed", exist_ok=True, plots=False, mosaic=1.0, **AUGMENT))
        # on the CPU ultralytics sets workers=0, where augmentation draws from the main process;
        # GPU runs augment in workers seeded from the loader's generator, the part to check
        trainer.args.workers = 2
        trainer.model = None  # no network until training starts: the loader's stride is 32
        build = trainer.get_dataloader if ours else super(trainer_class, trainer).get_dataloader
        loader = build(trainer.data["train"], batch_size=2, rank=-1, mode="train")
        files, images = [], []
        for batch in loader:  # one epoch
            files += [Path(f).name for f in batch["im_file"]]
            images.append(batch["img"].clone())
        del loader  # its workers end here
        return files, torch.cat(images)

    files0, images0 = first_epoch(0)
    assert sorted(files0) == ["%d.png" % i for i in range(8)]
    again, images_again = first_epoch(0)
    assert again == files0 and torch.equal(images_again, images0)
    files1, images1 = first_epoch(1)
    assert files1 != files0 and not torch.equal(images1, images0)
    # seed 0 is ultralytics' own order and augmentation: runs from before --seed reached it repeat
    stock, stock_images = first_epoch(0, ours=False)
    assert stock == files0 and torch.equal(stock_images, images0)


# ---------------------------------------------------------------------------- polygon labels

def test_ultralytics_reads_our_hull_labels_as_boxes_with_polygons(tmp_path, cpu_training):
    """The data set's ink-hull lines reach ultralytics' detect loader as boxes (the hulls'
    bounds) that carry their polygons, which its affine augmentation then warps."""
    from hanja_live.train import dataset
    from hanja_live.train.offline import prepare_ultralytics

    prepare_ultralytics()
    from ultralytics.cfg import get_cfg
    from ultralytics.data.dataset import YOLODataset

    dataset.generate(str(tmp_path / "d"), {"train": 4}, seed=1, long_side=320, progress=False)
    loaded = YOLODataset(img_path=str(tmp_path / "d" / "images" / "train"), imgsz=320, augment=True,
                         hyp=get_cfg(overrides={"degrees": 10.0, "mosaic": 0.0}), batch_size=1, task="detect",
                         data={"names": dict(enumerate(CLASS_NAMES)), "nc": len(CLASS_NAMES), "channels": 3})
    n_boxes = 0
    for label in loaded.labels:
        stem = Path(label["im_file"]).stem
        ours = ev.read_labels(tmp_path / "d" / "labels" / "train" / (stem + ".txt"), 1, 1, len(CLASS_NAMES))
        assert len(label["segments"]) == len(label["bboxes"]) == len(ours[0])
        xywh = label["bboxes"]
        xyxy = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
        assert np.allclose(xyxy, ours[1], atol=1e-5)
        n_boxes += len(xyxy)
    assert n_boxes > 0
    item = loaded[0]  # one augmented sample: normalised xywh boxes inside the image
    assert item["bboxes"].shape[1] == 4 and 0 <= float(item["bboxes"].min()) and float(item["bboxes"].max()) <= 1


def test_hull_labels_stay_tight_through_ultralytics_augmentation(cpu_training):
    from hanja_live.train.augment_boxes import format_report, measure

    report = measure(samples=60, seed=0, log=None)
    every = report["all"]
    assert every["n"] >= 50
    # box labels grow under our rotation / shear / perspective settings, hull labels do not
    assert every["box_w"] > 1.03 and every["box_h"] > 1.03, every
    assert abs(every["hull_w"] - 1) < 0.01 and abs(every["hull_h"] - 1) < 0.01, every
    assert len(format_report(report)) == len(report) + 1


def test_loader_cost_compares_hull_and_box_labels_on_the_same_images(tmp_path, cpu_training):
    from hanja_live.train import dataset
    from hanja_live.train.augment_boxes import loader_cost

    dataset.generate(str(tmp_path / "d"), {"train": 6}, seed=2, long_side=320, progress=False)
    report = loader_cost(str(tmp_path / "d"), imgsz=320, log=None)
    assert set(report) == {"hull", "box"}
    assert report["hull"]["images"] == report["box"]["images"] == 6
    assert report["box"]["boxes"] > 0 and report["hull"]["ms"] > 0
    # the same images and random draws: about the same boxes survive either kind of label
    assert abs(report["hull"]["boxes"] - report["box"]["boxes"]) <= 1.0, report


def test_augment_boxes_loader_needs_a_data_set(tmp_path):
    from hanja_live.train.augment_boxes import main

    with pytest.raises(SystemExit) as exc:
        main(["--loader", str(tmp_path)])
    assert "no labels/train" in str(exc.value) and "hanja_live.train.dataset" in str(exc.value)
