"""What a model's false positives lie on, in a data set this package generated.

    python -m hanja_live.train.false_positives --data V1280 --split val \\
        --detections v.detections.jsonl [--conf C] [--workers 2] [--out fp.json] \\
        [--min-count 3] [--min-rate 0.15]

The detections are the JSON lines `python -m hanja_live.train.evaluate --out v.json` leaves
beside its report (v.detections.jsonl). Every image of a generated data set is a function of
the seed and settings in its generator.json, so each is drawn again here (nothing is written)
to recover the negatives on its page and the box of their ink in the frame. Each false positive
at --conf (a box that matches no target of its class at IoU 0.5, as evaluate counts them) is
then put on one of:

* an unlabelled numeral: IoU >= 0.5 with a numeral the labels leave out (cut by the frame edge
  or faint, compose.frame_unlabelled), which evaluate drops rather than counts;
* a target: IoU >= 0.3 with a target box of any class (a wrong class, a loose or a second box);
* a negative: the one with the highest max(IoU, half the share of the box it covers), if that
  reaches 0.2, i.e. IoU >= 0.2 or at least 40 % of the box on the negative's ink box;
* other: paper, rulings, doodles, clutter.

Printed: counts by kind (all images and target-free ones), the negatives that fired most with
their rates per instance in the frames, and those that fired at least --min-count times on at
least --min-rate of their instances as a --confusers string for hanja_live.train.dataset.
"""

import argparse
import json
import multiprocessing
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from hanja_live import CLASS_NAMES
from hanja_live.config import load_config
from hanja_live.errors import ConfigError, HanjaLiveError
from hanja_live.train.charsets import CONFUSERS, group_of
from hanja_live.train.compose import NegativeMix
from hanja_live.train.dataset import Progress, image_index, init_worker, labelled_scene, read_generator
from hanja_live.train.evaluate import box_iou, ignored, match_image, read_detections, read_labels

ON_TARGET_IOU = 0.3
ON_NEGATIVE_SCORE = 0.2


class Drawn(NamedTuple):
    """One image drawn again: its target count and the negatives the frame shows."""
    name: str
    hw: Tuple[int, int]  # frame (height, width)
    targets: int
    negatives: List[Tuple[str, Tuple[int, int, int, int]]]  # (character, ink box x1 y1 x2 y2)
    unlabelled: np.ndarray  # (K, 4) ink boxes of the numerals the labels leave out


class Settings(NamedTuple):
    """What one split's images were drawn with (from the data set's generator.json)."""
    seed: int
    split: str
    long_side: int
    small_share: float
    negatives: NegativeMix


def read_settings(data, split):
    # type: (Path, str) -> Settings
    gen = read_generator(str(data))
    return Settings(gen.seed, split, gen.test_long_side if split == "test" else gen.long_side,
                    gen.small_share, gen.negatives)


def draw_again(task):
    # type: (Tuple[Settings, str, int]) -> Drawn
    settings, name, index = task
    seen = labelled_scene(settings.seed, settings.split, index, settings.long_side, settings.small_share,
                          settings.negatives)
    h, w = seen.scene.image.shape[:2]
    return Drawn(name, (int(h), int(w)), len(seen.targets), seen.negatives,
                 seen.unlabelled[:, 1:].astype(np.float64))


def draw_all(settings, names, workers=1, progress=True):
    # type: (Settings, List[str], int, bool) -> Dict[str, Drawn]
    tasks = []
    for name in names:
        index = image_index(name, settings.split)
        if index is None or not name.endswith(".jpg"):
            raise ConfigError(f"detections name image {name!r}, which is not a {settings.split} "
                              f"image of this data set ({settings.split}_NNNNNN.jpg)")
        tasks.append((settings, name, index))
    bar = Progress("drawing again", len(tasks)) if progress else None
    out = {}
    pool = None
    if workers > 1:
        # spawn, as dataset.generate does: a forked child can inherit OpenCV's thread pool locked
        pool = multiprocessing.get_context("spawn").Pool(workers, initializer=init_worker)
    try:
        drawn_all = pool.imap_unordered(draw_again, tasks, chunksize=8) if pool else map(draw_again, tasks)
        for drawn in drawn_all:
            out[drawn.name] = drawn
            if bar:
                bar.update(1)
    finally:
        if pool is not None:
            pool.terminate()
    return out


def on_what(box, target_xyxy, negatives):
    # type: (np.ndarray, np.ndarray, List[Tuple[str, Tuple[int, int, int, int]]]) -> Optional[str]
    """"target", a negative's character, or None (other) for one false-positive box (x1 y1 x2 y2)."""
    if len(target_xyxy) and box_iou(box[None], target_xyxy).max() >= ON_TARGET_IOU:
        return "target"
    if not negatives:
        return None
    neg = np.array([b for _, b in negatives], np.float64)
    iou = box_iou(box[None], neg)[0]
    lt, rb = np.maximum(box[:2], neg[:, :2]), np.minimum(box[2:], neg[:, 2:])
    area = max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-12)
    cover = np.clip(rb - lt, 0.0, None).prod(axis=1) / area
    score = np.maximum(iou, 0.5 * cover)
    best = int(score.argmax())
    return negatives[best][0] if score[best] >= ON_NEGATIVE_SCORE else None


def attribute(detections, labels_dir, drawn, conf=None):
    # type: (dict, Path, Dict[str, Drawn], Optional[float]) -> dict
    """Counts of false positives at ``conf`` (None: the app's model.conf) by what they lie on, and per
    negative character its instances, false positives and the classes it was taken for."""
    if conf is None:
        conf = load_config().model.conf
    by_kind, by_kind_empty = Counter(), Counter()
    instances = Counter(ch for d in drawn.values() for ch, _ in d.negatives)
    fired, taken_for = Counter(), defaultdict(Counter)
    images = empty = 0
    for name in sorted(drawn):
        d = drawn[name]
        label_path = labels_dir / (Path(name).stem + ".txt")
        cls, conf_all, xyxy = detections[name]
        gt_cls, gt_xyxy = read_labels(label_path, d.hw[1], d.hw[0], len(CLASS_NAMES))
        if len(gt_cls) != d.targets:
            raise ConfigError(f"{label_path} holds {len(gt_cls)} targets, but drawing {name} again "
                              f"gives {d.targets}: the data set was made by another version of the "
                              f"generator; regenerate it with python -m hanja_live.train.dataset")
        images += 1
        empty += len(gt_cls) == 0
        keep = conf_all >= conf
        # every IoU threshold, as evaluate matches: it keeps a box that hits a target at any of them
        tp_all = match_image(xyxy[keep], conf_all[keep], cls[keep], gt_xyxy, gt_cls)
        tp = tp_all[:, 0]
        unlabelled = ignored(xyxy[keep], tp_all.any(axis=1), d.unlabelled)
        for box, c, on_unlabelled in zip(xyxy[keep][~tp], cls[keep][~tp], unlabelled[~tp]):
            what = "unlabelled numeral" if on_unlabelled else on_what(box, gt_xyxy, d.negatives)
            if what is None:
                kind = "other"
            elif what in ("target", "unlabelled numeral"):
                kind = what
            else:
                kind = group_of(what)
                fired[what] += 1
                taken_for[what][CLASS_NAMES[int(c)]] += 1
            by_kind[kind] += 1
            if len(gt_cls) == 0:
                by_kind_empty[kind] += 1
    per_negative = {ch: {"instances": instances[ch], "false_positives": fired[ch],
                         "rate": fired[ch] / instances[ch] if instances[ch] else None,
                         "taken_for": dict(taken_for[ch].most_common())}
                    for ch in sorted(set(instances) | set(fired), key=lambda c: (-fired[c], c))}
    return {"conf": conf, "images": images, "images_without_targets": empty,
            "false_positives": sum(by_kind.values()), "by_kind": dict(by_kind.most_common()),
            "by_kind_target_free": dict(by_kind_empty.most_common()),
            "negative_instances": sum(instances.values()), "per_negative": per_negative}


def suggested_confusers(report, min_count=3, min_rate=0.15):
    # type: (dict, int, float) -> str
    """Negatives that fired at least min_count times on at least min_rate of their instances,
    highest rate first."""
    rows = [(stats["rate"], ch) for ch, stats in report["per_negative"].items()
            if stats["false_positives"] >= min_count and stats["rate"] is not None
            and stats["rate"] >= min_rate]
    return "".join(ch for _, ch in sorted(rows, key=lambda r: (-r[0], r[1])))


def format_report(report, top=25, min_count=3, min_rate=0.15):
    # type: (dict, int, int, float) -> str
    lines = [f"false positives at conf >= {report['conf']:g}: {report['false_positives']} on "
             f"{report['images']} images (" + ", ".join(f"{k} {v}" for k, v in report["by_kind"].items()) + ")",
             f"on the {report['images_without_targets']} target-free images: " +
             (", ".join(f"{k} {v}" for k, v in report["by_kind_target_free"].items()) or "none"),
             f"negatives in the frames: {report['negative_instances']}; those that fired most "
             f"(false positives / instances, taken for):"]
    shown = [(ch, s) for ch, s in report["per_negative"].items() if s["false_positives"]][:top]
    for ch, s in shown:
        taken = " ".join(f"{k} {v}" for k, v in s["taken_for"].items())
        lines.append(f"  {ch}  {s['false_positives']:3d} / {s['instances']:4d}  ({taken})")
    fired = suggested_confusers(report, min_count, min_rate)
    new = "".join(ch for ch in fired if ch not in CONFUSERS)
    lines.append(f"fired >= {min_count} times on >= {min_rate:.0%} of their instances: '{fired}'; "
                 f"{len(new)} of them not among the default confusers: '{new}'")
    lines.append(f"to draw those more often too: hanja_live.train.dataset --confusers '{CONFUSERS}{new}'")
    return "\n".join(lines)


def run(data, split, detections_path, conf=None, workers=1, progress=True):
    # type: (str, str, str, Optional[float], int, bool) -> dict
    data_dir = Path(data)
    settings = read_settings(data_dir, split)
    labels_dir = data_dir / "labels" / split
    if not labels_dir.is_dir():
        raise ConfigError(f"{labels_dir} not found: --split {split} is not in {data_dir}")
    if not Path(detections_path).is_file():
        raise ConfigError(f"--detections {detections_path} not found; evaluate --out X.json "
                          f"writes X.detections.jsonl")
    detections = read_detections(detections_path, len(CLASS_NAMES))
    if not detections:
        raise ConfigError(f"--detections {detections_path} holds no image")
    drawn = draw_all(settings, sorted(detections), workers, progress)
    return attribute(detections, labels_dir, drawn, conf)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m hanja_live.train.false_positives",
                                description="what a model's false positives lie on, in a "
                                            "generated data set (drawn again from its seed)")
    p.add_argument("--data", required=True, help="data set folder written by hanja_live.train.dataset")
    p.add_argument("--split", default="val", help="split the detections are from (default val)")
    p.add_argument("--detections", required=True,
                   help="JSON lines of the detector (evaluate --out X.json writes X.detections.jsonl)")
    p.add_argument("--conf", type=float, default=load_config().model.conf,
                   help="operating threshold (default: the app's model.conf, %(default)g)")
    p.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    p.add_argument("--min-count", type=int, default=3,
                   help="least false positives for the --confusers suggestion (default 3)")
    p.add_argument("--min-rate", type=float, default=0.15,
                   help="least share of instances that fired for the suggestion (default 0.15)")
    p.add_argument("--out", help="also write the report as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    args = p.parse_args(argv)
    if not 0.0 < args.conf <= 1.0:
        raise ConfigError(f"--conf {args.conf:g}: give a threshold in (0, 1]")
    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: give at least 1")
    if args.min_count < 1 or not 0.0 <= args.min_rate <= 1.0:
        raise ConfigError("--min-count must be >= 1 and --min-rate in [0, 1]")
    if args.out and not Path(args.out).resolve().parent.is_dir():
        raise ConfigError(f"--out {args.out}: no such folder; give a writable path")
    return args


def main(argv=None):
    try:
        args = parse_args(argv)
        report = run(args.data, args.split, args.detections, args.conf, args.workers,
                     progress=not args.quiet)
        print(format_report(report, min_count=args.min_count, min_rate=args.min_rate))
        if args.out:
            try:
                Path(args.out).write_text(json.dumps(report, ensure_ascii=False, indent=1),
                                          encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"--out {args.out}: {exc.strerror}; give a writable path") from None
    except HanjaLiveError as exc:
        sys.exit(f"false_positives: {exc}")


if __name__ == "__main__":
    main()
