"""How tight are the boxes ultralytics trains on, after its rotation / shear / perspective
augmentation? Box labels against the ink-hull polygon labels that our data set writes.

    python -m hanja_live.train.augment_boxes [--samples 1000] [--seed 0]
    python -m hanja_live.train.augment_boxes --loader DATA   # a data set made by hanja_live.train.dataset

Each sample writes one hanja numeral with the training ink at a random size, draws one warp
of ultralytics' RandomPerspective with our settings (train.AUGMENT), and compares the box
ultralytics derives with the box of the warped ink itself: from a box label it bounds the
box's warped corners, from a polygon label the warped polygon. Prints the median width and
height ratios (derived / true) per class; 1.000 is a tight box.

--loader runs ultralytics' training loader (mosaic and our augmentation) over DATA's train split
twice, with its hull labels and with the same labels cut to boxes, drawing the same random
numbers for both: boxes kept per image and milliseconds per image, for each kind of label.
"""

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

from hanja_live import CLASS_NAMES
from hanja_live.train import compose, scene
from hanja_live.train.charsets import TARGETS

PAGE_HW = (480, 640)


def measure(samples=1000, seed=0, log=print):
    # type: (int, int, object) -> Dict[str, Dict[str, float]]
    """{class name or "all": {"box_w", "box_h", "hull_w", "hull_h": median ratio, "n"}}.

    Seeds Python's shared ``random`` module too: ultralytics draws its warps from it."""
    from hanja_live.train.offline import prepare_ultralytics
    from hanja_live.train.train import AUGMENT

    prepare_ultralytics()
    from ultralytics.data.augment import RandomPerspective

    warp = RandomPerspective(degrees=AUGMENT["degrees"], translate=AUGMENT["translate"],
                             scale=AUGMENT["scale"], shear=AUGMENT["shear"],
                             perspective=AUGMENT["perspective"])
    h, w = PAGE_HW
    warp.size = (w, h)
    rng = np.random.default_rng(seed)
    random.seed(seed)
    rows = []  # (cls, box w, box h, hull w, hull h) as ratios to the warped ink's box
    for i in range(samples):
        cls = i % len(TARGETS)
        page = np.full((h, w, 3), 235, np.uint8)
        writer = compose.PageWriter(rng, page, "train", scene.choose_pen(rng), (0.0, 0.0, float(w), float(h)))
        item = writer.write(TARGETS[cls], w / 2.0, h / 2.0, float(rng.uniform(30, 150)))
        if item is None:
            continue
        label = compose.frame_ink(item.mask, item.x, item.y, np.eye(3), PAGE_HW)
        _, matrix, _ = warp.affine_transform(page, (0, 0))
        truth = compose.frame_ink(item.mask, item.x, item.y, matrix, PAGE_HW, min_visible=1.0)
        if label is None or truth is None:
            continue  # the warp pushed some ink out of the frame
        box, hull = label
        from_box = warp.apply_bboxes(np.array([box], np.float32), matrix)[0]
        from_hull = warp.apply_segments(hull[None].astype(np.float32), matrix)[0][0]
        tw, th = truth[0][2] - truth[0][0], truth[0][3] - truth[0][1]
        rows.append((cls, (from_box[2] - from_box[0]) / tw, (from_box[3] - from_box[1]) / th,
                     (from_hull[2] - from_hull[0]) / tw, (from_hull[3] - from_hull[1]) / th))
        if log and (i + 1) % 100 == 0:
            log("augment_boxes: %d/%d samples" % (i + 1, samples))
    table = np.array(rows, np.float64).reshape(-1, 5)
    report = {}
    for name, part in [("all", table)] + [(CLASS_NAMES[c], table[table[:, 0] == c])
                                           for c in range(len(TARGETS))]:
        if len(part):
            medians = np.median(part[:, 1:], axis=0)
            report[name] = dict(zip(("box_w", "box_h", "hull_w", "hull_h"), medians.tolist()), n=len(part))
    return report


def box_label_copy(data, out):
    # type: (str, str) -> str
    """``out``: DATA's train split with each polygon label cut to its box ("cls cx cy w h"), the
    images linked; returns the image folder."""
    from hanja_live.train.dataset import yolo_lines
    from hanja_live.train.evaluate import read_labels

    src = os.path.join(data, "labels", "train")
    os.makedirs(os.path.join(out, "labels", "train"))
    os.makedirs(os.path.join(out, "images"))
    os.symlink(os.path.abspath(os.path.join(data, "images", "train")), os.path.join(out, "images", "train"))
    for name in os.listdir(src):
        if name.endswith(".txt"):
            cls, xyxy = read_labels(Path(src, name), 1, 1, len(CLASS_NAMES))
            lines = yolo_lines(np.c_[cls, xyxy], (1, 1))
            with open(os.path.join(out, "labels", "train", name), "w") as f:
                f.write("".join(line + "\n" for line in lines))
    return os.path.join(out, "images", "train")


def loader_cost(data, imgsz=640, log=print):
    # type: (str, int, object) -> Dict[str, Dict[str, float]]
    """{"hull" / "box": {"boxes": mean boxes per image, "ms": median ms per image}} over DATA's
    train split, each image loaded once to warm up, then once measured; seeds ``random``."""
    from hanja_live.train.offline import prepare_ultralytics
    from hanja_live.train.train import AUGMENT

    prepare_ultralytics()
    from ultralytics.cfg import get_cfg
    from ultralytics.data.dataset import YOLODataset

    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {"hull": os.path.join(data, "images", "train"), "box": box_label_copy(data, tmp)}
        for kind, folder in folders.items():
            loader = YOLODataset(img_path=folder, imgsz=imgsz, augment=True, batch_size=16, task="detect",
                                 hyp=get_cfg(overrides=dict(AUGMENT, mosaic=1.0)),
                                 data={"names": dict(enumerate(CLASS_NAMES)), "nc": len(CLASS_NAMES), "channels": 3})
            # ultralytics finds labels beside the image paths it holds; had it resolved the link, the
            # box run would read the hull labels (as train's check_det_dataset does for data.yaml paths)
            polygons = sum(len(label["segments"]) for label in loader.labels)
            if (polygons > 0) != (kind == "hull"):
                raise RuntimeError("augment_boxes: the %s run read %d polygon labels from %s"
                                   % (kind, polygons, os.path.dirname(loader.label_files[0])))
            boxes, seconds = [], []
            for warm in (True, False):
                for i in range(len(loader)):
                    random.seed(i)
                    np.random.seed(i)
                    t0 = time.perf_counter()
                    item = loader[i]
                    if not warm:
                        seconds.append(time.perf_counter() - t0)
                        boxes.append(len(item["bboxes"]))
            report[kind] = {"boxes": float(np.mean(boxes)), "ms": 1000.0 * float(np.median(seconds)),
                            "images": len(boxes)}
            if log:
                log("augment_boxes: %s labels: %.2f boxes per image, %.1f ms per image (median of %d)"
                    % (kind, report[kind]["boxes"], report[kind]["ms"], len(boxes)))
    return report


def format_report(report):
    # type: (Dict[str, Dict[str, float]]) -> List[str]
    lines = ["class     n   box label: w / h    hull label: w / h   (derived / true box, median)"]
    for name, r in report.items():
        lines.append("%-5s %5d        %.3f / %.3f        %.3f / %.3f" % (
            name, r["n"], r["box_w"], r["box_h"], r["hull_w"], r["hull_h"]))
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m hanja_live.train.augment_boxes", description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=1000, help="characters to warp (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loader", metavar="DATA",
                   help="instead: the training loader's boxes and time per image on DATA's train split, "
                        "hull labels against box labels")
    args = p.parse_args(argv)
    if args.loader:
        if not os.path.isdir(os.path.join(args.loader, "labels", "train")):
            sys.exit("augment_boxes: %s has no labels/train; make it with python -m hanja_live.train.dataset"
                     % args.loader)
        loader_cost(args.loader)
        return
    if args.samples < 1:
        sys.exit("augment_boxes: --samples must be at least 1")
    for line in format_report(measure(args.samples, args.seed)):
        print(line)


if __name__ == "__main__":
    main()
