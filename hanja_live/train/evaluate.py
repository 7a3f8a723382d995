"""Accuracy of a model on a labelled split, measured through the app's own detector.

    python -m hanja_live.train.evaluate --model models/M.onnx --data DIR --split test \\
        [--conf-default C] [--out report.json]

runs ``python -m hanja_live detect DIR/images/<split> --json OUT.jsonl --conf 0.001`` so the
numbers include the app's letterbox, decoder and NMS, then scores the JSON lines against the
YOLO labels in DIR/labels/<split>:

* mAP50 and mAP50-95: COCO-style, 101-point interpolated AP per class, IoU 0.50:0.95 in steps
  of 0.05, each detection (highest score first) matched to the unmatched ground-truth box of
  its class with the highest IoU; classes without ground truth are left out of the mean.
* precision and recall at the operating threshold (``--conf-default``, IoU 0.5), pooled over
  all classes.
* false positives per image on the images that hold no target (at the operating threshold).
* unlabelled numerals: where the data set has DIR/ignore/<split> (hanja_live.train.dataset lists
  there each numeral the frame shows that its labels leave out, cut by the frame edge or too
  faint), a detection that matches no target at IoU 0.5 but covers such a numeral at IoU 0.5
  (any class) is dropped, neither a hit nor a false positive, as PASCAL VOC treats its
  "difficult" objects. The report also counts them, and the false positives per target-free
  image they would have added.
* recall by target size (the longer side of the target's box over the image height, in the
  buckets of SIZE_EDGES; the project's scenes hold characters from about 2.5 % of the frame
  height): says whether the misses are small characters.
* false positives per target-free image and precision at equal recall (FP_AT_RECALLS), each at
  the highest threshold that keeps that recall: how two models compare on false positives when
  one scores everything lower than the other.

Needs NumPy, OpenCV (image sizes) and PyYAML only, so it runs without torch.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import yaml

from hanja_live.config import load_config
from hanja_live.errors import ConfigError, HanjaLiveError

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # COCO: 0.50, 0.55, ..., 0.95
IGNORE_IOU = 0.5  # a detection this close to an unlabelled numeral (ignore/) is dropped
RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # COCO's 101 recall thresholds
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DETECT_CONF = 0.001  # keep nearly every candidate so the precision-recall curve is complete
SIZE_EDGES = (0.0, 0.025, 0.04, 0.06, 0.1, 0.2, float("inf"))  # target size / image height
# Recalls at which models are compared on false positives: a model whose scores are all lower shows
# fewer false positives at a fixed threshold without telling lookalikes apart any better (leg Q).
FP_AT_RECALLS = (0.90, 0.93)


def box_iou(a, b):
    """IoU matrix of (N, 4) and (M, 4) xyxy boxes -> (N, M)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0.0, None).prod(axis=2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def match_image(pred_xyxy, pred_conf, pred_cls, gt_xyxy, gt_cls, iou_thresholds=IOU_THRESHOLDS,
                gt_conf=None):
    """Greedy COCO matching in one image -> tp (N, T) bool, rows in the order of the predictions.

    Highest score first, each prediction takes the unmatched ground-truth box of its own class
    with the highest IoU, if that IoU reaches the threshold; done for all T thresholds at once.
    gt_conf: optional (G,) array, filled with the score of the prediction that matched each
    ground-truth box at the first threshold (-inf where none did, so that no threshold finds it).
    """
    n, t, g = len(pred_conf), len(iou_thresholds), len(gt_cls)
    tp = np.zeros((n, t), dtype=bool)
    if gt_conf is not None:
        gt_conf[:] = -np.inf
    if n == 0 or g == 0:
        return tp
    iou = box_iou(pred_xyxy, gt_xyxy)  # (N, G)
    iou[pred_cls[:, None] != gt_cls[None, :]] = -1.0  # other classes never match
    taken = np.zeros((t, g), dtype=bool)  # ground truth already matched, per threshold
    rows = np.arange(t)
    for i in np.argsort(-pred_conf, kind="mergesort"):
        cand = np.where(taken, -1.0, iou[i][None, :])  # (T, G)
        j = cand.argmax(axis=1)
        hit = cand[rows, j] >= iou_thresholds
        tp[i] = hit
        taken[rows[hit], j[hit]] = True
        if gt_conf is not None and hit[0]:
            gt_conf[j[0]] = pred_conf[i]
    return tp


def average_precision(tp, conf, n_gt):
    """101-point interpolated AP per IoU threshold: tp (N, T) bool, conf (N,) -> (T,)."""
    t = tp.shape[1]
    if n_gt == 0:
        return np.full(t, np.nan)
    if len(conf) == 0:
        return np.zeros(t)
    tp = tp[np.argsort(-conf, kind="mergesort")]
    tpc = np.cumsum(tp, axis=0)
    fpc = np.cumsum(~tp, axis=0)
    recall = tpc / float(n_gt)  # (N, T), non-decreasing down the rows
    precision = tpc / (tpc + fpc)
    envelope = np.maximum.accumulate(precision[::-1], axis=0)[::-1]  # best precision at >= recall
    ap = np.empty(t)
    for k in range(t):
        idx = np.searchsorted(recall[:, k], RECALL_POINTS, side="left")
        inside = idx < len(conf)
        ap[k] = np.where(inside, envelope[np.minimum(idx, len(conf) - 1), k], 0.0).mean()
    return ap


def _image_files(images_dir):
    if not images_dir.is_dir():
        raise ConfigError(f"image folder {images_dir} does not exist; pass --data DIR holding "
                          f"images/<split> and labels/<split> (as hanja_live.train.dataset writes)")
    files = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ConfigError(f"image folder {images_dir} holds no images; generate the data set first")
    return files


def read_labels(label_path, width, height, n_classes):
    """YOLO label file -> cls (M,) int, xyxy (M, 4) in pixels. A line is a box "cls cx cy w h"
    or a polygon "cls x1 y1 x2 y2 x3 y3 ..." (hanja_live.train.dataset writes ink hulls), whose
    box is its bounds; coordinates normalised."""
    if not label_path.is_file():
        return np.zeros(0, np.int64), np.zeros((0, 4))
    rows = [line.split() for line in label_path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 4))
    if any(len(r) != 5 and (len(r) < 7 or len(r) % 2 == 0) for r in rows):
        raise HanjaLiveError(f"{label_path}: every line must be 'cls cx cy w h' or a polygon 'cls x1 y1 "
                             f"x2 y2 x3 y3 ...'; regenerate the labels with hanja_live.train.dataset")
    try:
        values = [np.array(r, dtype=np.float64) for r in rows]
    except ValueError:
        raise HanjaLiveError(f"{label_path} holds a non-number; regenerate the labels") from None
    arr = np.array([v[0] for v in values])
    cls = arr.astype(np.int64)
    if (cls < 0).any() or (cls >= n_classes).any() or (arr != cls).any():
        raise HanjaLiveError(f"{label_path}: class index outside 0..{n_classes - 1}; the labels do "
                             f"not belong to the {n_classes} names of data.yaml")
    xyxy = np.empty((len(values), 4))
    for i, v in enumerate(values):
        if len(v) == 5:
            xyxy[i] = np.concatenate([v[1:3] - v[3:5] / 2, v[1:3] + v[3:5] / 2])
        else:
            points = v[1:].reshape(-1, 2)
            xyxy[i] = np.concatenate([points.min(axis=0), points.max(axis=0)])
    return cls, xyxy * [width, height, width, height]


def read_detections(jsonl_path, n_classes):
    """JSON lines of `hanja_live detect` -> {image name: (cls (N,), conf (N,), xyxy (N, 4))}."""
    out = {}
    with open(jsonl_path, "r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{jsonl_path}:{lineno}"
            try:
                rec = json.loads(line)
                dets = rec["detections"]
                name = os.path.basename(str(rec["image"]))
                cls = np.array([d["cls"] for d in dets], dtype=np.int64)
                conf = np.array([d["conf"] for d in dets], dtype=np.float64)
                xyxy = (np.array([d["box"] for d in dets], dtype=np.float64).reshape(len(dets), -1)
                        if dets else np.zeros((0, 4)))
            except (ValueError, KeyError, TypeError) as exc:
                raise HanjaLiveError(f"{where} is not a detect record ({exc!r}); rerun "
                                     f"'python -m hanja_live detect ... --json'") from None
            if xyxy.shape[1] != 4:
                raise HanjaLiveError(f"{where}: a box needs 4 numbers x1 y1 x2 y2; rerun detect")
            if ((cls < 0) | (cls >= n_classes)).any():
                raise HanjaLiveError(f"{where}: class index outside 0..{n_classes - 1}; the "
                                     f"model's classes do not match the data set's names")
            if name in out:
                raise HanjaLiveError(f"{where}: image {name} appears twice; write the detections "
                                     f"to a fresh file")
            out[name] = (cls, conf, xyxy)
    return out


def at_recall(conf, tp50, on_empty, n_targets, n_empty, recall):
    """The highest threshold that keeps ``recall`` of the targets, with the false positives per
    target-free image and the precision there; None when no threshold reaches that recall.

    conf, tp50, on_empty: per detection (N,): score, a true positive at IoU 0.5, on an image
    without targets."""
    if n_targets == 0 or len(conf) == 0:
        return None
    order = np.argsort(-conf, kind="stable")
    reached = np.nonzero(np.cumsum(tp50[order]) >= recall * n_targets - 1e-9)[0]
    if len(reached) == 0:
        return None
    threshold = conf[order[reached[0]]]
    kept = conf >= threshold  # ties with the threshold count, as the app keeps them
    n_tp = int((tp50 & kept).sum())
    return {"recall": recall, "conf": _num(threshold), "recall_kept": _ratio(n_tp, n_targets),
            "fp_per_empty_image": _ratio(int((kept & on_empty).sum()), n_empty),
            "precision": _ratio(n_tp, int(kept.sum()))}


def ignored(xyxy, hit, ignore_xyxy):
    """Detections (N, 4) to drop: a true positive at no IoU threshold (hit (N,) bool says which are
    one at some threshold) and IoU >= IGNORE_IOU with one of the unlabelled numerals ignore_xyxy
    (M, 4), whatever its class -> (N,) bool."""
    if not len(xyxy) or not len(ignore_xyxy):
        return np.zeros(len(xyxy), bool)
    return ~hit & (box_iou(xyxy, ignore_xyxy).max(axis=1) >= IGNORE_IOU)


def evaluate_jsonl(jsonl_path, labels_dir, images_dir, names, conf_threshold=None,
                   fp_at_recalls=FP_AT_RECALLS, ignore_dir=None):
    """Score detect's JSON lines against YOLO labels; returns the report as a JSON-ready dict.

    ``names`` lists the class names in index order; every image in ``images_dir`` counts
    (an image without a line in the JSON file counts as one with no detections).
    ``fp_at_recalls``: the recalls "at_recall" reports false positives at (at_recall()).
    ``ignore_dir``: optional folder of YOLO box files (the data set's ignore/<split>) naming the
    unlabelled numerals whose detections are dropped (ignored()).
    ``conf_threshold``: the operating threshold; None for the app's (model.conf).
    """
    if conf_threshold is None:
        conf_threshold = load_config().model.conf
    labels_dir, images_dir, names = Path(labels_dir), Path(images_dir), list(names)
    ignore_dir = None if ignore_dir is None else Path(ignore_dir)
    nc = len(names)
    files = _image_files(images_dir)
    preds = read_detections(jsonl_path, nc)
    known = {p.name for p in files}
    stray = sorted(set(preds) - known)
    if stray:
        raise HanjaLiveError(f"{jsonl_path} names {len(stray)} image(s) not in {images_dir} "
                             f"(first: {stray[0]}); run detect on that same folder")

    det_cls, det_conf, det_tp, det_empty = [], [], [], []  # per image, concatenated below
    gt_size, gt_hit_conf = [], []  # per target: size / image height, score of its match
    n_gt = np.zeros(nc, np.int64)
    n_empty_images = 0
    n_ignore_boxes, dropped_conf, dropped_empty = 0, [], []  # the dropped detections' score, image
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise HanjaLiveError(f"{path} cannot be read as an image; delete or regenerate it")
        height, width = image.shape[:2]
        gt_cls, gt_xyxy = read_labels(labels_dir / (path.stem + ".txt"), width, height, nc)
        n_gt += np.bincount(gt_cls, minlength=nc)
        n_empty_images += len(gt_cls) == 0
        cls, conf, xyxy = preds.get(path.name, (np.zeros(0, np.int64), np.zeros(0),
                                                np.zeros((0, 4))))
        hit_conf = np.empty(len(gt_cls))  # filled by match_image
        tp_image = match_image(xyxy, conf, cls, gt_xyxy, gt_cls, gt_conf=hit_conf)
        if ignore_dir is not None:
            _, ignore_xyxy = read_labels(ignore_dir / (path.stem + ".txt"), width, height, nc)
            n_ignore_boxes += len(ignore_xyxy)
            # greedy matching per threshold: a box that loses its target at 0.5 can still win it at 0.55
            drop = ignored(xyxy, tp_image.any(axis=1), ignore_xyxy)
            dropped_conf.append(conf[drop])
            dropped_empty.append(np.full(int(drop.sum()), len(gt_cls) == 0))
            cls, conf, tp_image = cls[~drop], conf[~drop], tp_image[~drop]
        det_cls.append(cls)
        det_conf.append(conf)
        det_tp.append(tp_image)
        gt_hit_conf.append(hit_conf)
        # rounded: a label at exactly an edge (2.5 %) must not fall below it by float error
        gt_size.append(np.round((gt_xyxy[:, 2:] - gt_xyxy[:, :2]).max(axis=1, initial=0.0)
                                / height, 9))
        det_empty.append(np.full(len(cls), len(gt_cls) == 0))
    cls = np.concatenate(det_cls)
    conf = np.concatenate(det_conf)
    tp = np.concatenate(det_tp).reshape(-1, len(IOU_THRESHOLDS))
    on_empty = np.concatenate(det_empty).astype(bool)

    ap = np.stack([average_precision(tp[cls == c], conf[cls == c], n_gt[c]) for c in range(nc)])
    kept = conf >= conf_threshold
    tp50 = tp[:, 0] & kept
    per_class = []
    for c in range(nc):
        mine = cls == c
        n_det = int((kept & mine).sum())
        n_tp = int((tp50 & mine).sum())
        per_class.append({
            "cls": c, "name": names[c], "targets": int(n_gt[c]),
            "AP50": _num(ap[c, 0]), "AP50_95": _num(np.mean(ap[c])),
            "detections": n_det, "tp": n_tp,
            "precision": _ratio(n_tp, n_det), "recall": _ratio(n_tp, int(n_gt[c])),
        })
    has_gt = n_gt > 0
    n_det_kept, n_tp = int(kept.sum()), int(tp50.sum())
    sizes, found = np.concatenate(gt_size), np.concatenate(gt_hit_conf) >= conf_threshold
    by_size = []
    for lo, hi in zip(SIZE_EDGES[:-1], SIZE_EDGES[1:]):
        inside = (sizes >= lo) & (sizes < hi)
        by_size.append({"min": lo, "max": None if np.isinf(hi) else hi,
                        "targets": int(inside.sum()),
                        "recall": _ratio(int((found & inside).sum()), int(inside.sum()))})
    fp_empty = int((kept & on_empty).sum())
    n_targets = int(n_gt.sum())
    unlabelled = None
    if ignore_dir is not None:
        d_conf = np.concatenate(dropped_conf) if dropped_conf else np.zeros(0)
        d_empty = np.concatenate(dropped_empty).astype(bool) if dropped_empty else np.zeros(0, bool)
        d_kept = d_conf >= conf_threshold
        unlabelled = {"folder": str(ignore_dir), "numerals": n_ignore_boxes,
                      "detections_dropped": int(len(d_conf)), "dropped_at_conf": int(d_kept.sum()),
                      "dropped_on_empty_images_at_conf": int((d_kept & d_empty).sum()),
                      "fp_per_empty_image_counting_them": _ratio(fp_empty + int((d_kept & d_empty).sum()),
                                                                 n_empty_images)}
    return {
        "mAP50": _num(ap[has_gt, 0].mean()) if has_gt.any() else None,
        "mAP50_95": _num(ap[has_gt].mean()) if has_gt.any() else None,
        "conf_threshold": conf_threshold,
        "precision": _ratio(n_tp, n_det_kept),
        "recall": _ratio(n_tp, int(n_gt.sum())),
        "fp_per_empty_image": _ratio(fp_empty, n_empty_images),
        "recall_by_size": by_size,
        "at_recall": [at_recall(conf, tp[:, 0], on_empty, n_targets, n_empty_images, r)
                      for r in fp_at_recalls],
        "counts": {
            "images": len(files),
            "images_with_targets": len(files) - n_empty_images,
            "images_without_targets": n_empty_images,
            "images_without_detect_line": len(known - set(preds)),
            "targets": int(n_gt.sum()),
            "detections": int(len(conf)),
            "detections_at_conf": n_det_kept,
            "tp_at_conf": n_tp,
            "fp_at_conf": n_det_kept - n_tp,
            "fn_at_conf": int(n_gt.sum()) - n_tp,
            "fp_on_empty_images_at_conf": fp_empty,
        },
        "per_class": per_class,
        "unlabelled_numerals": unlabelled,
        "sources": {"detections": str(jsonl_path), "labels": str(labels_dir),
                    "images": str(images_dir)},
    }


def _num(x):
    return None if np.isnan(x) else round(float(x), 6)


def _ratio(a, b):
    return round(a / b, 6) if b else None


def format_report(report):
    """Plain-text table of a report from evaluate_jsonl."""
    def f(x):
        return "   -  " if x is None else f"{x:6.3f}"
    lines = [f"{'class':<8}{'targets':>8}{'dets':>7}{'AP50':>8}{'AP50-95':>9}{'P':>8}{'R':>8}"]
    for row in report["per_class"]:
        label = f"{row['cls']} {row['name']}"
        lines.append(f"{label:<7}{row['targets']:>8}{row['detections']:>7}  {f(row['AP50'])}"
                     f"   {f(row['AP50_95'])}  {f(row['precision'])}  {f(row['recall'])}")
    c = report["counts"]
    lines.append(f"{'all':<8}{c['targets']:>8}{c['detections_at_conf']:>7}  {f(report['mAP50'])}"
                 f"   {f(report['mAP50_95'])}  {f(report['precision'])}  {f(report['recall'])}")
    lines.append(f"dets, P and R at conf >= {report['conf_threshold']} and IoU 0.5; "
                 f"AP over all detections")
    lines.append(f"images: {c['images']} ({c['images_without_targets']} without targets); "
                 f"false positives per target-free image: {f(report['fp_per_empty_image']).strip()}")
    un = report.get("unlabelled_numerals")
    if un is None:
        lines.append("no ignore/ folder: detections on numerals the labels leave out (cut by the frame, "
                     "faint) count as false positives")
    else:
        lines.append(f"unlabelled numerals (cut by the frame, faint): {un['numerals']}; detections on them "
                     f"dropped: {un['detections_dropped']} ({un['dropped_at_conf']} at conf, "
                     f"{un['dropped_on_empty_images_at_conf']} on target-free images); counting them, false "
                     f"positives per target-free image: {f(un['fp_per_empty_image_counting_them']).strip()}")
    buckets = []
    for b in report["recall_by_size"]:
        span = f"{b['min'] * 100:g}-{b['max'] * 100:g} %" if b["max"] else f">= {b['min'] * 100:g} %"
        buckets.append(f"{span}: {f(b['recall']).strip()} of {b['targets']}")
    lines.append("recall by size (box's longer side / image height): " + ", ".join(buckets))
    points = []
    for point in report.get("at_recall", []):
        if point is not None:
            points.append(f"recall {point['recall']:g} at conf {point['conf']:.3f}: "
                          f"{f(point['fp_per_empty_image']).strip()} false positives per target-free image, "
                          f"precision {f(point['precision']).strip()}")
    lines.append("at equal recall: " + ("; ".join(points) or "not reached"))
    return "\n".join(lines)


def load_names(data_set):
    """Class names from a data set's data.yaml, given as DIR or as the .yaml file itself
    (ultralytics form: list or {index: name})."""
    path = Path(data_set)
    if path.suffix not in (".yaml", ".yml"):
        path = path / "data.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError:
        raise ConfigError(f"{path} is missing; pass --data the folder that "
                          f"hanja_live.train.dataset wrote") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names, key=int)]
    if not names:
        raise ConfigError(f"{path} lists no 'names'; regenerate the data set")
    return [str(n) for n in names]


def run_detector(model, images_dir, jsonl_path, backend=None, python=sys.executable, verifier=None):
    """`python -m hanja_live detect` on a folder, all candidates down to DETECT_CONF.
    verifier: None for the app's own (model.verifier), False for none, or a path."""
    cmd = [python, "-m", "hanja_live", "detect", str(images_dir), "--json", str(jsonl_path),
           "--conf", str(DETECT_CONF), "--model", str(model), "--overwrite"]
    if backend:
        cmd += ["--backend", backend]
    if verifier is False:
        cmd += ["--no-verifier"]
    elif verifier is not None:
        cmd += ["--verifier", str(verifier)]
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])  # folder that holds hanja_live/
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    print("+ " + " ".join(cmd), flush=True)
    code = subprocess.call(cmd, env=env)
    if code != 0:
        raise HanjaLiveError(f"the detector exited with status {code}; run the command above by "
                             f"hand to see why")


def evaluate(model, data, split="test", conf_threshold=None, out=None, jsonl=None,
             reuse=False, backend=None, verifier=None):
    """Detect on DIR/images/<split> with the app, score it, print a table, write JSON if ``out``.
    verifier: None for the app's own (model.verifier), False for none, or a path."""
    data = Path(data)
    names = load_names(data)
    images_dir, labels_dir = data / "images" / split, data / "labels" / split
    _image_files(images_dir)
    if not labels_dir.is_dir():
        raise ConfigError(f"label folder {labels_dir} does not exist; pass --data the folder that "
                          f"hanja_live.train.dataset wrote")
    with tempfile.TemporaryDirectory(prefix="hanja_eval_") as tmp:
        if jsonl is None:
            jsonl = (Path(out).with_suffix(".detections.jsonl") if out
                     else Path(tmp) / "detections.jsonl")
        jsonl = Path(jsonl)
        if not (reuse and jsonl.is_file()):
            if not Path(model).is_file():
                raise ConfigError(f"model {model} does not exist; export one with "
                                  f"hanja_live.train.export")
            jsonl.parent.mkdir(parents=True, exist_ok=True)
            run_detector(model, images_dir, jsonl, backend=backend, verifier=verifier)
        ignore_dir = data / "ignore" / split
        report = evaluate_jsonl(jsonl, labels_dir, images_dir, names, conf_threshold,
                                ignore_dir=ignore_dir if ignore_dir.is_dir() else None)
    report["model"] = str(model)
    report["split"] = split
    report["verifier"] = ("the app's (model.verifier)" if verifier is None else
                          "none" if verifier is False else str(verifier))
    print(format_report(report))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n",
                             encoding="utf-8")
        print(f"report: {out}")
    return report


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m hanja_live.train.evaluate",
                                description="mAP, precision/recall and false positives of a "
                                            "model on a labelled split, through the app's detector")
    p.add_argument("--model", required=True, help="ONNX model (or engine) the app can load")
    p.add_argument("--data", required=True, help="data set folder (data.yaml, images/, labels/)")
    p.add_argument("--split", default="test", help="split folder name (default test)")
    p.add_argument("--conf-default", type=float, default=load_config().model.conf,
                   help="operating threshold for precision, recall and FP/image (default: the app's "
                        "model.conf, %(default)g)")
    p.add_argument("--out", help="report JSON; the detections go beside it as .detections.jsonl")
    p.add_argument("--jsonl", help="where to keep detect's JSON lines (default beside --out)")
    p.add_argument("--reuse", action="store_true", help="score an existing --jsonl, no detect run")
    p.add_argument("--backend", choices=("auto", "tensorrt", "onnxruntime"),
                   help="passed to the detector")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--verifier", help="verifier model passed to the detector (default: the app's)")
    which.add_argument("--no-verifier", action="store_true", help="score the detector's boxes unverified")
    args = p.parse_args(argv)
    try:
        evaluate(args.model, args.data, args.split, args.conf_default, args.out, args.jsonl,
                 args.reuse, args.backend, False if args.no_verifier else args.verifier)
    except HanjaLiveError as exc:
        sys.exit(f"evaluate: {exc}")


if __name__ == "__main__":
    main()
