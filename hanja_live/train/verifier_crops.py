"""Patches for training the verifier, cut from generated scenes as the app would cut them.

    python -m hanja_live.train.verifier_crops --out crops.npz --images 30000 --seed 31 \\
        [--split train] [--size 1280] [--workers 14] [--small-share 0.4] \\
        [--negative-pages 0.25] [--confusers CHARS] [--confuser-share 0.5]

Each scene is drawn by hanja_live.train.dataset's generator (same seed -> same scene) and
JPEG-compressed as a data set image would be. From it come patches (hanja_live.patches) of:

* each target, boxed a little off its ink box as a detector would box it (label = its class);
* each negative character, boxed the same way (label OTHER);
* paper at random places and sizes away from every target (label OTHER);
* boxes half off a target, around part of it or it and its neighbours (label OTHER);
* with ``--detections`` (the JSON lines of ``python -m hanja_live detect`` run on the same scenes
  written by hanja_live.train.dataset with the same seed and settings), each box the detector
  found: on a target at IoU >= 0.5 labelled with that target's class, on no target (IoU < 0.3)
  labelled OTHER: the very mistakes the verifier is there to catch.

A numeral the frame shows but the data set leaves unlabelled (cut by the frame edge or faint,
compose.frame_unlabelled) is no paper and no mistake: no paper, off-target or detector box labelled
OTHER comes near it.

Written: one .npz with ``patches`` (N, 64, 64) uint8, ``label`` (N,) int8 (class, or OTHER),
``kind`` (N,) int8 (KINDS), ``char`` (N,) the character under a target or negative patch ("" for
the rest) and ``height`` (N,) float32, the box height over the frame height.
"""

import argparse
import multiprocessing
import os
import sys
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np

from hanja_live import CLASS_NAMES
from hanja_live.errors import ConfigError, HanjaLiveError
from hanja_live.patches import PATCH_SIZE, cut_patches, to_gray
from hanja_live.train.charsets import NEGATIVES
from hanja_live.train.compose import NegativeMix
from hanja_live.train.dataset import Progress, SPLITS, image_name, init_worker, labelled_scene
from hanja_live.train.evaluate import box_iou, read_detections

OTHER = len(CLASS_NAMES)  # label of every patch that shows no numeral boxed as one
KINDS = ("target", "negative", "paper", "off_target", "detected_target", "detected_other")
EDGE_JITTER = 0.06  # sd of each box edge's shift, in box widths / heights
MIN_TARGET_IOU = 0.6  # a jittered target box stays this close to the ink box
OFF_TARGET_IOU = (0.05, 0.3)  # a box that overlaps a target this much shows no numeral boxed
PAPER_PER_SCENE = 2
OFF_TARGET_SHARE = 0.3  # targets that also give one off-target box
DETECTED_TARGET_IOU = 0.5  # a detector box this close to a target shows that target
DETECTED_OTHER_IOU = 0.3  # a detector box below this with every target shows none (between: left out)


class CropSettings(NamedTuple):
    seed: int
    split: str
    long_side: int
    small_share: float
    negatives: NegativeMix
    per_box: int  # jittered patches per target and per negative


Detected = Tuple[np.ndarray, np.ndarray]  # one image's detector boxes: conf (N,), xyxy (N, 4)
NO_DETECTIONS = (np.zeros(0), np.zeros((0, 4)))  # type: Detected


class Crops(NamedTuple):
    patches: np.ndarray  # (N, S, S) uint8
    label: np.ndarray  # (N,) int8
    kind: np.ndarray  # (N,) int8, index into KINDS
    char: np.ndarray  # (N,) unicode
    height: np.ndarray  # (N,) float32, box height / frame height


def jitter_box(rng, box, sd=EDGE_JITTER, min_iou=MIN_TARGET_IOU, tries=20):
    # type: (np.random.Generator, np.ndarray, float, float, int) -> np.ndarray
    """The box (x1 y1 x2 y2) with each edge moved by N(0, sd) of its side, kept at IoU >= min_iou
    with the original (the original itself if no try gets there)."""
    box = np.asarray(box, np.float64)
    wh = np.maximum(box[2:] - box[:2], 1.0)
    for _ in range(tries):
        moved = box + rng.normal(0.0, sd, 4) * np.tile(wh, 2)
        if (moved[2:] > moved[:2]).all() and box_iou(moved[None], box[None])[0, 0] >= min_iou:
            return moved
    return box.copy()


def paper_boxes(rng, hw, targets, count, tries=20):
    # type: (np.random.Generator, Tuple[int, int], np.ndarray, int, int) -> List[np.ndarray]
    """Up to ``count`` boxes of random size (2-40 % of the frame height, aspect 1:4 to 4:1) that
    overlap no target box (N, 4) at IoU 0.05 or more."""
    h, w = hw
    out = []  # type: List[np.ndarray]
    for _ in range(tries):
        if len(out) >= count:
            break
        bh = h * np.exp(rng.uniform(np.log(0.02), np.log(0.4)))
        bw = bh * np.exp(rng.uniform(np.log(0.25), np.log(4.0)))
        if bw >= w or bh >= h:
            continue
        x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        box = np.array([x1, y1, x1 + bw, y1 + bh])
        if len(targets) and box_iou(box[None], targets).max() >= OFF_TARGET_IOU[0]:
            continue
        out.append(box)
    return out


def off_target_box(rng, box, others, tries=20):
    # type: (np.random.Generator, np.ndarray, np.ndarray, int) -> Optional[np.ndarray]
    """A box shifted or rescaled off ``box`` to IoU in OFF_TARGET_IOU with it and below the upper
    bound with every target in ``others`` (N, 4), or None."""
    box = np.asarray(box, np.float64)
    wh = np.maximum(box[2:] - box[:2], 1.0)
    centre = (box[:2] + box[2:]) * 0.5
    lo, hi = OFF_TARGET_IOU
    for _ in range(tries):
        if rng.random() < 0.5:  # shifted: part of it and what lies beside
            c = centre + rng.uniform(-1.2, 1.2, 2) * wh
            half = wh * 0.5 * rng.uniform(0.8, 1.25, 2)
        else:  # grown around it with its neighbours, or shrunk to a piece of it
            c = centre + rng.uniform(-0.3, 0.3, 2) * wh
            half = wh * 0.5 * (rng.uniform(2.0, 3.5) if rng.random() < 0.5 else rng.uniform(0.3, 0.5))
        cand = np.concatenate([c - half, c + half])
        if not lo <= box_iou(cand[None], box[None])[0, 0] <= hi:
            continue
        if len(others) and box_iou(cand[None], others).max() > hi:
            continue
        return cand
    return None


def detected_labels(xyxy, targets, unlabelled=None):
    # type: (np.ndarray, np.ndarray, Optional[np.ndarray]) -> np.ndarray
    """For detector boxes (N, 4) and targets (M, 5) [cls, x1, y1, x2, y2]: the class of the target
    each box lies on (IoU >= DETECTED_TARGET_IOU), OTHER for boxes on none (IoU below
    DETECTED_OTHER_IOU with all), -1 for the boxes in between (neither, left out) and for those
    at DETECTED_OTHER_IOU or more with an ``unlabelled`` (K, 5) numeral."""
    out = np.full(len(xyxy), OTHER, np.int64)
    if not len(xyxy):
        return out
    if unlabelled is not None and len(unlabelled):
        near = box_iou(np.asarray(xyxy, np.float64), unlabelled[:, 1:].astype(np.float64)).max(axis=1)
        out[near >= DETECTED_OTHER_IOU] = -1
    if not len(targets):
        return out
    iou = box_iou(np.asarray(xyxy, np.float64), targets[:, 1:].astype(np.float64))
    best = iou.argmax(axis=1)
    top = iou[np.arange(len(xyxy)), best]
    out[top >= DETECTED_OTHER_IOU] = -1
    hit = top >= DETECTED_TARGET_IOU
    out[hit] = targets[best[hit], 0].astype(np.int64)
    return out


def scene_crops(task):
    # type: (Tuple[CropSettings, int, Detected]) -> Crops
    """Worker: the patches of one scene."""
    settings, index, detected = task
    seen = labelled_scene(settings.seed, settings.split, index, settings.long_side, settings.small_share,
                          settings.negatives)
    hw = seen.scene.image.shape[:2]
    ok, jpeg = cv2.imencode(".jpg", seen.scene.image, [cv2.IMWRITE_JPEG_QUALITY, seen.quality])
    gray = to_gray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))
    # a stream of its own: the scene's random numbers stay those of the data set image
    rng = np.random.default_rng([settings.seed, SPLITS.index(settings.split), index, 7])
    target_xyxy = seen.targets[:, 1:].astype(np.float64)
    numeral_xyxy = np.concatenate([target_xyxy, seen.unlabelled[:, 1:].astype(np.float64)])  # labelled or not
    rows = []  # type: List[Tuple[np.ndarray, int, int, str]]  # (box, label, kind, char)
    for row in seen.targets:
        cls, box = int(row[0]), row[1:]
        rows += [(jitter_box(rng, box), cls, 0, CLASS_NAMES[cls]) for _ in range(settings.per_box)]
        if rng.random() < OFF_TARGET_SHARE:
            off = off_target_box(rng, box, numeral_xyxy)
            if off is not None:
                rows.append((off, OTHER, 3, ""))
    for ch, box in seen.negatives:
        rows += [(jitter_box(rng, np.array(box, np.float64)), OTHER, 1, ch) for _ in range(settings.per_box)]
    rows += [(box, OTHER, 2, "") for box in paper_boxes(rng, hw, numeral_xyxy, PAPER_PER_SCENE)]
    det_xyxy = detected[1]
    for box, cls in zip(det_xyxy, detected_labels(det_xyxy, seen.targets, seen.unlabelled)):
        if cls >= 0:
            rows.append((np.asarray(box, np.float64), int(cls), 5 if cls == OTHER else 4,
                         "" if cls == OTHER else CLASS_NAMES[int(cls)]))
    xyxy = np.array([r[0] for r in rows], np.float64).reshape(-1, 4)
    label, kind, char = [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows]
    return Crops(cut_patches(gray, xyxy), np.array(label, np.int8), np.array(kind, np.int8),
                 np.array(char, dtype="<U1"), ((xyxy[:, 3] - xyxy[:, 1]) / hw[0]).astype(np.float32))


def join(parts):
    # type: (Sequence[Crops]) -> Crops
    if not parts:
        return Crops(np.zeros((0, PATCH_SIZE, PATCH_SIZE), np.uint8), np.zeros(0, np.int8),
                     np.zeros(0, np.int8), np.zeros(0, "<U1"), np.zeros(0, np.float32))
    return Crops(*(np.concatenate(field) for field in zip(*parts)))


def generate_crops(settings, images, workers=1, progress=True, detections=None):
    # type: (CropSettings, int, int, bool, Optional[Dict[str, Detected]]) -> Crops
    """Patches of scenes 0..images-1; ``detections`` maps data set image names (train_000012.jpg)
    to that image's detector boxes."""
    detections = detections or {}
    tasks = [(settings, i, detections.get(image_name(settings.split, i) + ".jpg", NO_DETECTIONS))
             for i in range(images)]
    bar = Progress("scenes", images) if progress else None
    pool = None
    if workers > 1:
        # spawn, as dataset.generate does: a forked child can inherit OpenCV's thread pool locked
        pool = multiprocessing.get_context("spawn").Pool(workers, initializer=init_worker)
    parts = [None] * images  # type: List[Optional[Crops]]
    try:
        results = pool.imap(scene_crops, tasks, chunksize=16) if pool else map(scene_crops, tasks)
        for i, crops in enumerate(results):
            parts[i] = crops
            if bar:
                bar.update(1)
    finally:
        if pool is not None:
            pool.terminate()
    return join([p for p in parts if p is not None])


def save(path, crops, settings):
    # type: (str, Crops, CropSettings) -> None
    tmp = path + ".part.npz"
    np.savez(tmp, seed=settings.seed, split=settings.split, long_side=settings.long_side,
             **crops._asdict())
    os.replace(tmp, path)


def load(path):
    # type: (str) -> Crops
    with np.load(path) as f:
        return Crops(*(f[name] for name in Crops._fields))


def summary(crops):
    # type: (Crops) -> str
    kinds = ", ".join("%s %d" % (k, int((crops.kind == i).sum())) for i, k in enumerate(KINDS))
    return "%d patches (%s)" % (len(crops.label), kinds)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m hanja_live.train.verifier_crops",
                                description="patches for training the verifier, cut from generated scenes")
    p.add_argument("--out", required=True, help=".npz file to write")
    p.add_argument("--images", type=int, required=True, help="scenes to draw")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="train", choices=SPLITS,
                   help="ink sources and scene mix of this data set split (test: held-out ink)")
    p.add_argument("--size", type=int, default=1280, help="long side of the frames (default 1280)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--per-box", type=int, default=2, help="jittered patches per character (default 2)")
    p.add_argument("--small-share", type=float, default=0.0)
    p.add_argument("--negative-pages", type=float, default=0.0)
    p.add_argument("--confusers", default=NegativeMix().confusers)
    p.add_argument("--confuser-share", type=float, default=NegativeMix().confuser_share)
    p.add_argument("--detections", help="JSON lines of hanja_live detect on the same scenes, written by "
                                         "hanja_live.train.dataset with this --seed and these settings")
    p.add_argument("--detections-conf", type=float, default=0.05,
                   help="detector boxes at least this confident become patches (default 0.05)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.images < 1 or args.workers < 1 or args.per_box < 1:
        raise ConfigError("--images, --workers and --per-box must be at least 1")
    if args.size < 64 or args.size % 2:
        raise ConfigError("--size %d: give an even long side of at least 64, e.g. 1280" % args.size)
    for flag, share in (("--small-share", args.small_share), ("--negative-pages", args.negative_pages),
                        ("--confuser-share", args.confuser_share)):
        if not 0.0 <= share <= 1.0:
            raise ConfigError("%s %g: give a share from 0 to 1" % (flag, share))
    unknown = sorted(set(args.confusers) - set(NEGATIVES))
    if unknown:
        raise ConfigError("--confusers: not negatives: %s" % " ".join(map(repr, unknown)))
    if args.detections and not os.path.isfile(args.detections):
        raise ConfigError("--detections %s not found; run python -m hanja_live detect DIR/images/%s "
                          "--json FILE --conf 0.05 on the data set first" % (args.detections, args.split))
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        raise ConfigError("--out %s: no such folder" % args.out)
    return args


def main(argv=None):
    # type: (Optional[Sequence[str]]) -> int
    args = parse_args(argv)
    settings = CropSettings(args.seed, args.split, args.size, args.small_share,
                            NegativeMix(args.negative_pages, args.confusers, args.confuser_share),
                            args.per_box)
    detections = None
    if args.detections:
        detections = {name: (conf[conf >= args.detections_conf], xyxy[conf >= args.detections_conf])
                      for name, (_, conf, xyxy) in read_detections(args.detections, len(CLASS_NAMES)).items()}
    crops = generate_crops(settings, args.images, args.workers, progress=not args.quiet,
                           detections=detections)
    save(args.out, crops, settings)
    print("%s: %s" % (args.out, summary(crops)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HanjaLiveError as exc:
        sys.exit("verifier_crops: %s" % exc)
