"""The verifier: patches cut around boxes, patches cut from generated scenes for training, and the
shipped verifier rescoring the shipped detector's boxes on real rendered scenes."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from hanja_live import CLASS_NAMES
from hanja_live.app import load_detector
from hanja_live.cli import build_parser, overrides_from
from hanja_live.config import load_config
from hanja_live.detections import Detections
from hanja_live.errors import HanjaLiveError, ModelError
from hanja_live.patches import PATCH_PAD, PATCH_SIZE, cut_patches, to_gray
from hanja_live.paths import PROJECT_DIR
from hanja_live.train import verifier_crops as vc
from hanja_live.train.compose import NegativeMix
from hanja_live.train.dataset import generate_scene
from hanja_live.train import dataset
from hanja_live.train.evaluate import box_iou, read_labels
from hanja_live.verifier import Verifier

MODEL = os.path.join(PROJECT_DIR, "models", "hanja_yolov5n.onnx")
VERIFIER = os.path.join(PROJECT_DIR, "models", "hanja_verifier.onnx")
CONFUSERS = "丸力几凡千干之乃入人工土士王丑互正므ㅁ口日曰匹西크穴玉+匕tㄷ兀大寸ㅅ丶云儿스프小ㅓ乜亠弋太"
SETTINGS = vc.CropSettings(5, "train", 640, 0.0, NegativeMix(0.25, CONFUSERS, 0.5), 2)


# --- patches ---------------------------------------------------------------------------------

def _frame():
    """A 100 x 200 grey frame: paper 200, one black 20 x 10 bar at x 40-60, y 30-40."""
    g = np.full((100, 200), 200, np.uint8)
    g[30:40, 40:60] = 0
    return g


@pytest.mark.parametrize("box, size, dark_rows, dark_cols", [
    # the bar boxed exactly: side 1.3 x 20 = 26 px around (50, 35), the bar 20/26 of the width
    ((40, 30, 60, 40), 26, (8, 18), (3, 23)),
    # the same box, patch of 52: twice the scale
    ((40, 30, 60, 40), 52, (16, 36), (6, 46)),
])
def test_patch_is_the_square_around_the_box(box, size, dark_rows, dark_cols):
    patch = cut_patches(_frame(), np.array([box]), size=size)[0]
    assert patch.shape == (size, size)
    rows = np.where(patch.min(axis=1) < 100)[0]
    cols = np.where(patch.min(axis=0) < 100)[0]
    assert abs(rows[0] - dark_rows[0]) <= 1 and abs(rows[-1] + 1 - dark_rows[1]) <= 1
    assert abs(cols[0] - dark_cols[0]) <= 1 and abs(cols[-1] + 1 - dark_cols[1]) <= 1


def test_patch_beyond_the_edge_repeats_the_edge():
    g = np.full((50, 50), 200, np.uint8)
    g[:, :5] = 10  # a dark band along the left edge
    patch = cut_patches(g, np.array([[0, 20, 10, 30]]), size=26)[0]
    # the box's centre is 5 px from the edge: the left half of the patch lies outside the frame
    # and repeats the edge column (dark), not black nor paper
    assert patch[:, :8].max() < 60
    assert patch[:, -5:].min() > 150


def test_patches_of_bgr_and_grey_agree_and_an_empty_box_list_gives_none():
    bgr = cv2.cvtColor(_frame(), cv2.COLOR_GRAY2BGR)
    assert np.array_equal(cut_patches(to_gray(bgr), np.array([[40, 30, 60, 40]])),
                          cut_patches(_frame(), np.array([[40, 30, 60, 40]])))
    assert cut_patches(_frame(), np.zeros((0, 4))).shape == (0, PATCH_SIZE, PATCH_SIZE)


# --- training patches ------------------------------------------------------------------------

@pytest.mark.parametrize("xyxy, targets, unlabelled, expected", [
    # on a 二 (IoU 0.81) -> its class; on nothing -> OTHER; IoU 0.39 -> left out (-1)
    ([[11, 11, 29, 29]], [[1, 10, 10, 30, 30]], [], [1]),
    ([[100, 100, 120, 120]], [[1, 10, 10, 30, 30]], [], [vc.OTHER]),
    ([[10, 10, 30, 17.8]], [[1, 10, 10, 30, 30]], [], [-1]),
    # the nearer of two targets decides the class, whatever the detector called it
    ([[50, 50, 70, 70], [0, 0, 20, 20]], [[3, 10, 10, 30, 30], [8, 50, 50, 70, 71]], [], [8, vc.OTHER]),
    # a frame with no target: everything is OTHER
    ([[0, 0, 5, 5]], np.zeros((0, 5)), [], [vc.OTHER]),
    (np.zeros((0, 4)), [[1, 10, 10, 30, 30]], [], []),
    # on a numeral the labels leave out (cut, faint): left out, not OTHER; IoU 0.39 with it too
    ([[100, 100, 120, 120]], [[1, 10, 10, 30, 30]], [[6, 100, 100, 120, 121]], [-1]),
    ([[0, 0, 5, 5]], np.zeros((0, 5)), [[2, 0, 0, 5, 12.8]], [-1]),
    ([[0, 0, 5, 5]], np.zeros((0, 5)), [[2, 0, 0, 5, 17]], [vc.OTHER]),  # IoU 0.29
    # a labelled target it lies on still names the class
    ([[11, 11, 29, 29]], [[1, 10, 10, 30, 30]], [[5, 10, 10, 30, 30]], [1]),
])
def test_detected_labels(xyxy, targets, unlabelled, expected):
    got = vc.detected_labels(np.array(xyxy, np.float64).reshape(-1, 4), np.array(targets, np.float32).reshape(-1, 5),
                             np.array(unlabelled, np.float32).reshape(-1, 5))
    assert got.tolist() == expected


def test_jittered_and_off_target_boxes_keep_their_bounds():
    rng = np.random.default_rng(0)
    box = np.array([100.0, 100.0, 140.0, 120.0])
    jittered = np.array([vc.jitter_box(rng, box) for _ in range(200)])
    iou = box_iou(jittered, box[None])[:, 0]
    assert iou.min() >= vc.MIN_TARGET_IOU and iou.mean() < 0.95  # moved, but not far
    offs = [vc.off_target_box(rng, box, box[None]) for _ in range(100)]
    offs = np.array([o for o in offs if o is not None])
    assert len(offs) > 50
    iou = box_iou(offs, box[None])[:, 0]
    assert iou.min() >= vc.OFF_TARGET_IOU[0] and iou.max() <= vc.OFF_TARGET_IOU[1]
    paper = np.array(vc.paper_boxes(rng, (480, 640), box[None], 50, tries=200))
    assert len(paper) >= 20 and box_iou(paper, box[None]).max() < vc.OFF_TARGET_IOU[0]


@pytest.fixture(scope="module")
def scene_patches():
    return [vc.scene_crops((SETTINGS, i, vc.NO_DETECTIONS)) for i in range(6)]


def test_scene_patches_show_the_ink_they_are_labelled_with(scene_patches):
    crops = vc.join(scene_patches)
    assert set(np.unique(crops.kind)) >= {0, 1, 2}
    assert len(crops.label) == len(crops.char) == len(crops.height) == len(crops.patches)
    targets, paper = crops.kind == 0, crops.kind == 2
    assert (crops.label[targets] < vc.OTHER).all() and (crops.label[~targets] == vc.OTHER).all()
    assert all(CLASS_NAMES[l] == c for l, c in zip(crops.label[targets], crops.char[targets]))
    # ink: a target patch spans more grey levels than a paper patch
    spread = crops.patches.reshape(len(crops.label), -1).astype(np.float32).std(axis=1)
    assert np.median(spread[targets]) > 2 * np.median(spread[paper])


def test_scene_patches_are_a_function_of_the_seed(scene_patches):
    again = vc.scene_crops((SETTINGS, 2, vc.NO_DETECTIONS))
    assert np.array_equal(again.patches, scene_patches[2].patches)


def test_detector_boxes_on_a_written_data_set_image_become_its_patches(tmp_path, scene_patches):
    # the data set writes the scene that scene_crops draws again: boxes given as the detector's
    # are cut from exactly the pixels of the written JPEG, and labelled by the target under them
    dataset.generate(str(tmp_path), {"train": 6}, SETTINGS.seed, long_side=SETTINGS.long_side,
                     progress=False, small_share=SETTINGS.small_share, negatives=SETTINGS.negatives)
    for index in range(6):
        name = "train_%06d" % index
        image = cv2.imread(str(tmp_path / "images" / "train" / (name + ".jpg")))
        h, w = image.shape[:2]
        cls, xyxy = read_labels(tmp_path / "labels" / "train" / (name + ".txt"), w, h, len(CLASS_NAMES))
        if not len(cls):
            continue
        xyxy = np.vstack([xyxy, [[1, 1, 9, 9]]])  # and one box on no target
        with_boxes = vc.scene_crops((SETTINGS, index, (np.ones(len(xyxy)), xyxy)))
        added = len(with_boxes.label) - len(scene_patches[index].label)
        assert added == len(xyxy)
        assert with_boxes.kind[-added:].tolist() == [4] * len(cls) + [5]
        assert with_boxes.label[-added:].tolist() == list(cls) + [vc.OTHER]
        assert np.array_equal(with_boxes.patches[-added:], cut_patches(to_gray(image), xyxy))
        return
    pytest.fail("none of the 6 scenes has a target")


def test_crops_command_writes_patches_and_names_bad_input(tmp_path):
    out = tmp_path / "c.npz"
    cmd = [sys.executable, "-m", "hanja_live.train.verifier_crops", "--out", str(out), "--images", "3",
           "--seed", "4", "--size", "320", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=PROJECT_DIR)
    assert done.returncode == 0, done.stderr
    crops = vc.load(str(out))
    assert crops.patches.shape[1:] == (PATCH_SIZE, PATCH_SIZE) and len(crops.label) > 0
    for extra, message in ((["--detections", str(tmp_path / "none.jsonl")], "--detections"),
                           (["--confusers", "九"], "not negatives"), (["--size", "63"], "--size")):
        bad = subprocess.run(cmd + extra, capture_output=True, text=True, cwd=PROJECT_DIR)
        assert bad.returncode != 0 and message in bad.stderr and "Traceback" not in bad.stderr


# --- the shipped verifier --------------------------------------------------------------------

needs_models = pytest.mark.skipif(not (os.path.isfile(MODEL) and os.path.isfile(VERIFIER)),
                                  reason="models/hanja_yolov5n.onnx or models/hanja_verifier.onnx missing")


@needs_models
def test_shipped_verifier_knows_held_out_numerals_and_rejects_lookalikes():
    verifier = Verifier(VERIFIER, CLASS_NAMES)
    settings = vc.CropSettings(11, "test", 1280, 0.0, NegativeMix(0.25, CONFUSERS, 0.5), 1)
    crops = vc.join([vc.scene_crops((settings, i, vc.NO_DETECTIONS)) for i in range(12)])
    pred = verifier.probs(crops.patches).argmax(axis=1)
    targets, negatives = crops.kind == 0, crops.kind == 1
    assert targets.sum() > 20 and negatives.sum() > 20
    # measured on 3000 held-out-ink scenes: 98.7 % of numerals kept, 98.6 % of negatives rejected
    assert (pred[targets] == crops.label[targets]).mean() > 0.9
    assert (pred[negatives] == vc.OTHER).mean() > 0.85


@needs_models
def test_verifier_only_lowers_scores_and_drops_what_falls_below_the_threshold():
    verifier = Verifier(VERIFIER, CLASS_NAMES)
    drawn, _ = generate_scene(3, "test", 0, 1280)
    frame = drawn.image
    boxes = Detections([[10, 10, 60, 60], [100, 100, 180, 150], [300, 200, 340, 260]], [0.9, 0.5, 0.3], [2, 5, 9])
    out = verifier(frame, boxes, 0.0)
    assert len(out) == 3 and (out.conf <= boxes.conf + 1e-6).all()
    p = verifier.probs(cut_patches(to_gray(frame), boxes.xyxy, PATCH_SIZE, PATCH_PAD))
    assert np.allclose(out.conf, boxes.conf * p[np.arange(3), boxes.cls], atol=1e-6)
    kept = verifier(frame, boxes, 0.29)
    assert len(kept) == int((out.conf >= 0.29).sum())
    assert len(verifier(frame, Detections.empty(), 0.25)) == 0


@needs_models
def test_detector_with_verifier_keeps_a_subset_of_its_boxes():
    drawn, _ = generate_scene(21, "test", 3, 1280, negatives=NegativeMix(0.25, CONFUSERS, 0.5))
    plain = load_detector(load_config(overrides={"model": {"path": MODEL, "verifier": None}}).model)
    checked = load_detector(load_config(overrides={"model": {"path": MODEL}}).model)
    assert checked.verifier is not None and plain.verifier is None
    a, ta = plain(drawn.image)
    b, tb = checked(drawn.image)
    assert ta.verify_ms == 0.0 and tb.verify_ms > 0.0
    assert len(b) <= len(a)
    for box, conf, cls in zip(b.xyxy, b.conf, b.cls):
        same = np.where((np.abs(a.xyxy - box).max(axis=1) < 1e-3) & (a.cls == cls))[0]
        assert len(same) == 1 and conf <= a.conf[same[0]] + 1e-6


@pytest.mark.parametrize("make, message", [
    (lambda tmp: str(tmp / "missing.onnx"), "verifier file not found"),
    (lambda tmp: MODEL, "is not a verifier"),
    (lambda tmp: _write(tmp / "junk.onnx", b"not a model"), "not a valid ONNX model"),
])
def test_a_wrong_verifier_file_is_named(tmp_path, make, message):
    if not os.path.isfile(MODEL):
        pytest.skip("models/hanja_yolov5n.onnx missing")
    with pytest.raises(ModelError, match=message):
        Verifier(make(tmp_path), CLASS_NAMES)


@needs_models
def test_a_verifier_for_other_classes_is_refused():
    with pytest.raises(ModelError, match="verifies classes"):
        Verifier(VERIFIER, list("ABCDEFGHIJ"))


def _write(path, data):
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("argv, expected", [
    (["detect", "x.jpg", "--json", "o.jsonl"], "absent"),
    (["detect", "x.jpg", "--json", "o.jsonl", "--no-verifier"], None),
    (["detect", "x.jpg", "--json", "o.jsonl", "--verifier", "v.onnx"], "v.onnx"),
    (["run", "--demo", "--no-verifier"], None),
    (["run", "--demo", "--verifier", "v.onnx", "--no-verifier"], HanjaLiveError),
])
def test_verifier_flags(argv, expected):
    args = build_parser().parse_args(argv)
    if expected is HanjaLiveError:
        with pytest.raises(HanjaLiveError, match="contradict"):
            overrides_from(args)
        return
    model = overrides_from(args)["model"]
    if expected == "absent":
        assert "verifier" not in model
        assert load_config(overrides={"model": model}).model.verifier == "models/hanja_verifier.onnx"
    else:
        assert model["verifier"] == expected
        assert load_config(overrides={"model": model}).model.verifier == expected


def test_train_verifier_one_epoch_on_the_cpu(tmp_path):
    pytest.importorskip("torch", reason="training needs torch (pip install -e .[train])")
    pytest.importorskip("onnx", reason="the export needs onnx (pip install -e .[train])")
    from hanja_live.train import train_verifier
    for name, seed, n in (("tr.npz", 5, 6), ("tr2.npz", 7, 3), ("va.npz", 6, 3)):
        settings = vc.CropSettings(seed, "train", 640, 0.0, NegativeMix(0.25, CONFUSERS, 0.5), 1)
        vc.save(str(tmp_path / name), vc.generate_crops(settings, n, progress=False), settings)
    onnx_path = tmp_path / "v.onnx"
    lines = []
    parts = [str(tmp_path / "tr.npz"), str(tmp_path / "tr2.npz")]  # two sets of scenes, joined
    stats, meta = train_verifier.train(parts, str(tmp_path / "va.npz"), str(tmp_path / "v.pt"),
                                       str(onnx_path), epochs=1, batch=64, width=4, log=lines.append)
    assert "verifier: %d training patches" % sum(len(vc.load(p).label) for p in parts) in lines[0]
    assert 0.0 <= stats["accuracy"] <= 1.0 and "epoch 1/1" in lines[-1]
    assert json.loads(meta["names"]) == list(CLASS_NAMES) + ["other"]
    verifier = Verifier(str(onnx_path), CLASS_NAMES)
    p = verifier.probs(vc.load(str(tmp_path / "va.npz")).patches[:5])
    assert p.shape == (5, 11) and np.allclose(p.sum(axis=1), 1.0, atol=1e-4)


@needs_models
def test_without_onnxruntime_the_app_runs_unverified_and_says_so(monkeypatch, caplog):
    import hanja_live.verifier as verifier_module

    def missing():
        raise HanjaLiveError("ONNX Runtime is not installed: pip install onnxruntime")
    monkeypatch.setattr(verifier_module, "import_onnxruntime", missing)
    with caplog.at_level("WARNING", logger="hanja_live"):
        detector = load_detector(load_config(overrides={"model": {"path": MODEL}}).model)
    assert detector.verifier is None
    assert "verifier off, boxes unverified: ONNX Runtime is not installed" in caplog.text
