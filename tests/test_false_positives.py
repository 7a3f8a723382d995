"""hanja_live.train.false_positives: false positives put on what lies under them, in a generated
data set drawn again from its seed."""

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from hanja_live import CLASS_NAMES
from hanja_live.train import false_positives
from hanja_live.train.charsets import CONFUSERS, NEGATIVE_GROUPS
from hanja_live.train.dataset import generate_scene
from hanja_live.train.compose import frame_negatives
from hanja_live.train.evaluate import box_iou, evaluate_jsonl, read_labels

ROOT = Path(__file__).resolve().parents[1]
SEED = 9


@pytest.mark.parametrize("box, targets, negatives, expected", [
    # on a target of any class: IoU 0.81 and 0.33
    ([10, 10, 30, 30], [[11, 11, 29, 29]], [("工", (10, 10, 30, 30))], "target"),
    ([10, 10, 30, 30], [[10, 10, 30, 50]], [], "target"),
    # IoU 0.25 with a target is not enough; the negative it covers is what it lies on
    ([0, 0, 20, 20], [[10, 10, 30, 30]], [("丸", (0, 0, 20, 22))], "丸"),
    # the negative with the best score wins: IoU 0.9 against 0.2
    ([0, 0, 20, 20], [], [("入", (0, 0, 40, 10)), ("人", (0, 0, 20, 18))], "人"),
    # a box inside a larger negative's ink box (IoU 0.06, all of it covered: score 0.5)
    ([10, 10, 20, 20], [], [("匹", (0, 0, 40, 40))], "匹"),
    # 27 % of the box on the negative, IoU 0.15: below 0.2 either way
    ([0, 0, 30, 30], [], [("+", (22, 0, 52, 30))], None),
    # a third of it, IoU 0.2: on it
    ([0, 0, 30, 30], [], [("+", (20, 0, 50, 30))], "+"),
    ([0, 0, 10, 10], [], [], None),
    ([0, 0, 10, 10], [[50, 50, 60, 60]], [("t", (30, 30, 40, 40))], None),
])
def test_on_what(box, targets, negatives, expected):
    t = np.array(targets, np.float64).reshape(-1, 4)
    assert false_positives.on_what(np.array(box, np.float64), t, negatives) == expected


@pytest.fixture(scope="module")
def val_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("fp")
    subprocess.run([sys.executable, "-m", "hanja_live.train.dataset", "--out", str(out), "--train", "0",
                    "--val", "12", "--test", "0", "--seed", str(SEED), "--size", "480", "--quiet"],
                   cwd=ROOT, check=True, timeout=300, stdout=subprocess.DEVNULL)
    return out


def _scene(index):
    drawn, _ = generate_scene(SEED, "val", index, 480)
    return frame_negatives(drawn.placed, drawn.hom, drawn.image.shape[:2], drawn.image)


def _labels(out, name):
    image = cv2.imread(str(out / "images" / "val" / name), cv2.IMREAD_GRAYSCALE)
    cls, xyxy = read_labels(out / "labels" / "val" / name.replace(".jpg", ".txt"),
                            image.shape[1], image.shape[0], len(CLASS_NAMES))
    return image, cls, xyxy


def _det(cls, box, conf=0.9):
    return {"cls": int(cls), "label": CLASS_NAMES[int(cls)], "conf": conf, "box": [float(v) for v in box]}


def _pick(out):
    """(name of an image with targets and a negative, its first negative, name of an image
    without targets) among the 12 drawn."""
    with_both = without = None
    for index in range(12):
        name = "val_%06d.jpg" % index
        _, cls, xyxy = _labels(out, name)
        # a negative apart from the targets, so that a box on it is not on a target too
        negs = [n for n in _scene(index)
                if not len(cls) or box_iou(np.array([n[1]], np.float64), xyxy).max() < 0.1]
        if len(cls) and negs and with_both is None:
            with_both = (name, negs[0])
        if not len(cls) and without is None:
            without = name
    assert with_both and without, "seed %d drew no image with both, or none without targets" % SEED
    return with_both[0], with_both[1], without


def test_the_negatives_drawn_again_are_ink_in_the_stored_images(val_set):
    """The boxes recovered from the seed lie on dark strokes in the JPEG files written earlier."""
    checked = 0
    for index in range(12):
        gray = cv2.imread(str(val_set / "images" / "val" / ("val_%06d.jpg" % index)), cv2.IMREAD_GRAYSCALE)
        for _, (x1, y1, x2, y2) in _scene(index):
            inside = gray[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)].astype(np.float32)
            pad = max(3, int(0.3 * max(x2 - x1, y2 - y1)))
            ring = gray[max(0, y1 - pad):y2 + pad, max(0, x1 - pad):x2 + pad].astype(np.float32)
            assert np.percentile(inside, 5) < np.median(ring) - 6
            checked += 1
    assert checked >= 5


def test_false_positives_are_put_on_what_lies_under_them(val_set, tmp_path):
    name, (char, neg_box), empty = _pick(val_set)
    image, cls, xyxy = _labels(val_set, name)
    h, w = image.shape
    other_class = (int(cls[0]) + 1) % len(CLASS_NAMES)
    records = [
        {"image": name, "detections": [
            _det(cls[0], xyxy[0]),  # a true positive: not counted
            _det(other_class, xyxy[0], 0.8),  # a wrong class on a target
            _det(0, neg_box, 0.7),  # on the negative
            _det(0, neg_box, 0.1),  # the same below --conf: not counted
        ]},
        {"image": empty, "detections": []},
    ]
    # a box on blank paper of the target-free image: the corner farthest from its negatives
    negs = _scene(int(empty[4:10]))
    corners = [(2, 2), (w - 14, 2), (2, h - 14), (w - 14, h - 14)]
    far = max(corners, key=lambda c: min([abs(c[0] - b[0]) + abs(c[1] - b[1]) for _, b in negs] or [1e9]))
    records[1]["detections"].append(_det(3, (far[0], far[1], far[0] + 12, far[1] + 12), 0.6))
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")

    report = false_positives.run(str(val_set), "val", str(jsonl), conf=0.25, workers=1, progress=False)
    group = next(g for g, chars in NEGATIVE_GROUPS.items() if char in chars)
    assert report["false_positives"] == 3
    assert report["images"] == 2 and report["images_without_targets"] == 1
    assert report["by_kind"] == dict({"target": 1, group: 1, "other": 1})
    assert report["by_kind_target_free"] == {"other": 1}
    stats = report["per_negative"][char]
    assert stats["false_positives"] == 1 and stats["taken_for"] == {CLASS_NAMES[0]: 1}
    assert stats["instances"] >= 1 and stats["rate"] == pytest.approx(1 / stats["instances"])
    assert report["negative_instances"] == len(_scene(int(name[4:10]))) + len(negs)

    text = false_positives.format_report(report, min_count=1, min_rate=0.0)
    assert "false positives at conf >= 0.25: 3 on 2 images" in text
    assert "--confusers '%s" % CONFUSERS in text and char in text.splitlines()[-1]


def test_a_detection_on_an_unlabelled_numeral_is_named_and_dropped_by_evaluate(val_set, tmp_path):
    """The data set's ignore/ lists numerals cut by the frame or too faint to label; they are ink in the
    stored image, false_positives names a box on one, and evaluate drops it instead of counting it."""
    found = []
    for path in sorted((val_set / "ignore" / "val").glob("*.txt")):
        gray = cv2.imread(str(val_set / "images" / "val" / (path.stem + ".jpg")), cv2.IMREAD_GRAYSCALE)
        cls, xyxy = read_labels(path, gray.shape[1], gray.shape[0], len(CLASS_NAMES))
        found += [(path.stem + ".jpg", c, box, gray) for c, box in zip(cls, xyxy)]
    assert found, "seed %d drew no numeral cut by the frame or faint in its 12 images" % SEED
    name, c, box, gray = found[0]
    x1, y1, x2, y2 = np.round(box).astype(int)
    assert np.percentile(gray[y1:y2, x1:x2], 5) < np.median(gray) - 6  # ink, if faint
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(json.dumps({"image": name, "detections": [_det(c, box, 0.8)]}) + "\n", encoding="utf-8")
    report = false_positives.run(str(val_set), "val", str(jsonl), conf=0.25, workers=1, progress=False)
    assert report["by_kind"] == {"unlabelled numeral": 1}
    scored = evaluate_jsonl(jsonl, val_set / "labels" / "val", val_set / "images" / "val", CLASS_NAMES,
                            ignore_dir=val_set / "ignore" / "val")
    assert scored["unlabelled_numerals"]["dropped_at_conf"] == 1 and scored["counts"]["fp_at_conf"] == 0


def test_workers_give_the_same_report(val_set, tmp_path):
    name, (_, neg_box), _ = _pick(val_set)
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("".join(json.dumps({"image": "val_%06d.jpg" % i, "detections": [_det(2, neg_box)]}) + "\n"
                             for i in range(12)), encoding="utf-8")
    one = false_positives.run(str(val_set), "val", str(jsonl), workers=1, progress=False)
    two = false_positives.run(str(val_set), "val", str(jsonl), workers=2, progress=False)
    assert one == two and one["images"] == 12


def _edited_labels(out, tmp_path):
    """A copy of the set whose first labelled image lost a target line."""
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    for label in sorted((copy / "labels" / "val").glob("*.txt")):
        lines = label.read_text().splitlines()
        if lines:
            label.write_text("".join(line + "\n" for line in lines[1:]))
            return copy, label.name.replace(".txt", ".jpg")
    raise AssertionError("no labelled image")


@pytest.mark.parametrize("case, message", [
    ("no generator.json", "generator.json not found"),
    ("no detections", "--detections .* not found"),
    ("an image of another split", "not a val image of this data set"),
    ("labels not from this generator", "another version of the generator"),
    ("--conf 0", "--conf 0: give a threshold"),
    ("--workers 0", "--workers 0: give at least 1"),
    ("unwritable --out", "--out .*: no such folder; give a writable path"),
])
def test_cli_refusals_are_one_line(val_set, tmp_path, case, message):
    data, image = val_set, "val_000000.jpg"
    extra = []
    if case == "no generator.json":
        data = tmp_path / "bare"
        subprocess.run(["cp", "-r", str(val_set), str(data)], check=True)
        (data / "generator.json").unlink()
    elif case == "labels not from this generator":
        data, image = _edited_labels(val_set, tmp_path)
    elif case == "an image of another split":
        image = "test_000000.jpg"
    elif case.startswith("--"):
        extra = case.split()
    elif case == "unwritable --out":
        extra = ["--out", str(tmp_path / "no" / "such" / "dir" / "r.json")]
    jsonl = tmp_path / "d.jsonl"
    if case != "no detections":
        jsonl.write_text(json.dumps({"image": image, "detections": []}) + "\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "hanja_live.train.false_positives", "--data", str(data),
                           "--split", "val", "--detections", str(jsonl), "--quiet"] + extra,
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("false_positives: ") and proc.stderr.strip().count("\n") == 0
    assert re.search(message, proc.stderr), proc.stderr
