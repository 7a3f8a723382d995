"""How tight are the boxes ultralytics trains on, after its rotation / shear / perspective
augmentation? Box labels against the ink-hull polygon labels that our data set writes.

    python -m hanja_live.train.augment_boxes [--samples 1000] [--seed 0]

Each sample writes one hanja numeral with the training ink at a random size, draws one warp
of ultralytics' RandomPerspective with our settings (train.AUGMENT), and compares the box
ultralytics derives with the box of the warped ink itself: from a box label it bounds the
box's warped corners, from a polygon label the warped polygon. Prints the median width and
height ratios (derived / true) per class; 1.000 is a tight box.
"""

import argparse
import random
import sys
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
    args = p.parse_args(argv)
    if args.samples < 1:
        sys.exit("augment_boxes: --samples must be at least 1")
    for line in format_report(measure(args.samples, args.seed)):
        print(line)


if __name__ == "__main__":
    main()
