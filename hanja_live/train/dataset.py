"""Generate the synthetic YOLO data set of handwritten hanja numerals.

    python -m hanja_live.train.dataset --out DIR --train N --val N --test N --seed S \\
        [--workers K] [--size 640] [--test-size 1280] [--preview N] [--small-share F] \\
        [--negative-pages F] [--confusers CHARS] [--confuser-share F]

writes DIR/images/{train,val,test}/*.jpg, DIR/labels/{train,val,test}/*.txt (one line per
character: "cls x1 y1 ... xk yk", the convex hull of its ink, normalised; its bounds are the
character's box, which is what ultralytics trains a detector on), DIR/ignore/{train,val,test}/*.txt
("cls cx cy w h" of each numeral the frame shows but the labels leave out: cut by the frame edge or
too faint, compose.frame_unlabelled; evaluate drops detections on them) and DIR/data.yaml. Every image is seeded from
(seed, split, index) alone, so the files are the same whatever the number of workers. "val"
draws from the training ink sources with its own seeds; "test" uses the held-out ink sources
(fonts and stroke sets the training split never sees) and its own seeds too. --preview N also
writes DIR/preview/*.jpg: the first N training images with their boxes drawn. --test-size
renders the test split at another long side than --size, e.g. at the 1280x720 a camera
delivers while training images stay small. --small-share, --negative-pages, --confusers and
--confuser-share change what the train split draws (val and test never change): more small
characters, more target-free pages, and which lookalikes come up more often.
"""

import argparse
import json
import multiprocessing
import os
import re
import sys
import time
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, TextIO, Tuple

import cv2
import numpy as np
import yaml

from hanja_live import CLASS_NAMES
from hanja_live.errors import ConfigError
from hanja_live.train.charsets import NEGATIVES
from hanja_live.train.compose import (NEED_CONTEXT, NegativeMix, Scene, draw_scene, frame_labels, frame_negatives,
                                      frame_targets)

SPLITS = ("train", "val", "test")
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
INK_SPLIT = {"train": "train", "val": "train", "test": "test"}
# Frame shapes of common cameras (width:height): 16:9 video modes and 4:3 sensor modes.
ASPECTS = ((16, 9), (4, 3))
CHUNK = 16  # images per task handed to a worker
SUBFOLDERS = ("images", "labels", "ignore")


def sample_rng(seed, split, index):
    # type: (int, str, int) -> np.random.Generator
    """The generator for one image: a function of (seed, split, index) only."""
    return np.random.default_rng([int(seed), SPLIT_IDS[split], int(index)])


def frame_size(rng, long_side):
    # type: (np.random.Generator, int) -> Tuple[int, int]
    """(h, w) with the long side ``long_side`` and a camera aspect; even sides."""
    aw, ah = ASPECTS[int(rng.integers(len(ASPECTS)))]
    return int(round(long_side * ah / aw / 2.0)) * 2, int(long_side)


def generate_scene(seed, split, index, long_side=640, small_share=0.0, negatives=NegativeMix()):
    # type: (int, str, int, int, float, NegativeMix) -> Tuple[Scene, int]
    """(the scene before labelling, JPEG quality) of one data set image; small_share and
    negatives (compose.make_sample) apply to the train split only."""
    rng = sample_rng(seed, split, index)
    hw = frame_size(rng, long_side)
    train = split == "train"
    drawn = draw_scene(rng, INK_SPLIT[split], hw, small_share=small_share if train else 0.0,
                       negatives=negatives if train else NegativeMix())
    return drawn, int(rng.integers(80, 96))


class LabelledScene(NamedTuple):
    """One data set image drawn again, with what the frame shows of its writing."""
    scene: Scene
    quality: int  # the JPEG quality the data set writes it with
    targets: np.ndarray  # (N, 5) float32 [cls, x1, y1, x2, y2] (frame_labels)
    negatives: List[Tuple[str, Tuple[int, int, int, int]]]  # (character, ink box) (frame_negatives)
    unlabelled: np.ndarray  # (K, 5) float32 [cls, x1, y1, x2, y2] (frame_unlabelled)


def labelled_scene(seed, split, index, long_side=640, small_share=0.0, negatives=NegativeMix()):
    # type: (int, str, int, int, float, NegativeMix) -> LabelledScene
    """generate_scene with the boxes of the targets and of the negatives the frame shows: what the
    tools that draw a data set again (false_positives, verifier_crops) read of each image."""
    drawn, quality = generate_scene(seed, split, index, long_side, small_share, negatives)
    hw = drawn.image.shape[:2]
    boxes, _, unlabelled = frame_targets(drawn.placed, drawn.hom, hw, drawn.image)
    return LabelledScene(drawn, quality, boxes, frame_negatives(drawn.placed, drawn.hom, hw, drawn.image),
                         unlabelled)


def generate_one(seed, split, index, long_side=640, small_share=0.0, negatives=NegativeMix()):
    # type: (int, str, int, int, float, NegativeMix) -> Tuple[np.ndarray, np.ndarray, List[np.ndarray], int]
    """(BGR image, boxes (N, 5) [cls, x1, y1, x2, y2], ink hulls (N of (K, 2)), JPEG quality)
    of one data set image (generate_scene, labelled)."""
    drawn, quality = generate_scene(seed, split, index, long_side, small_share, negatives)
    boxes, hulls = frame_labels(drawn.placed, drawn.hom, drawn.image.shape[:2], drawn.image)
    return drawn.image, boxes, hulls, quality


def yolo_lines(boxes, hw, hulls=None):
    # type: (np.ndarray, Tuple[int, int], Optional[Sequence[np.ndarray]]) -> List[str]
    """YOLO label lines, normalised to the image: "cls cx cy w h" for boxes (N, 5) in pixels,
    or with ``hulls`` (N of (K, 2) pixels) "cls x1 y1 ... xk yk", the polygon of each box.

    Why polygons: ultralytics bounds a polygon's warped points after its rotation, shear and
    perspective augmentations, and can only bound a box's warped corners (a looser box)."""
    h, w = hw
    boxes = np.asarray(boxes, np.float64).reshape(-1, 5)
    if hulls is not None:
        if len(hulls) != len(boxes):
            raise ValueError("%d hulls for %d boxes" % (len(hulls), len(boxes)))
        return ["%d %s" % (int(cls), " ".join("%.6f %.6f" % (x / w, y / h) for x, y in hull))
                for cls, hull in zip(boxes[:, 0], hulls)]
    out = []
    for cls, x1, y1, x2, y2 in boxes:
        out.append("%d %.6f %.6f %.6f %.6f" % (int(cls), (x1 + x2) / 2.0 / w, (y1 + y2) / 2.0 / h,
                                             (x2 - x1) / w, (y2 - y1) / h))
    return out


def image_name(split, index):
    # type: (str, int) -> str
    return "%s_%06d" % (split, index)


def image_index(filename, split):
    # type: (str, str) -> Optional[int]
    """The index of an image or label file named by image_name for ``split``, else None."""
    found = re.match(r"^%s_(\d{6})\.(jpg|txt)$" % re.escape(split), filename)
    return int(found.group(1)) if found else None


def _write_range(task):
    # type: (Tuple[str, str, int, int, int, int, float, NegativeMix]) -> int
    """Worker: generate and write images [start, stop) of one split; returns how many."""
    out, split, start, stop, seed, long_side, small_share, negatives = task
    for index in range(start, stop):
        drawn, quality = generate_scene(seed, split, index, long_side, small_share, negatives)
        image, hw = drawn.image, drawn.image.shape[:2]
        boxes, hulls, unlabelled = frame_targets(drawn.placed, drawn.hom, hw, image)
        name = image_name(split, index)
        path = os.path.join(out, "images", split, name + ".jpg")
        if not cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, quality]):
            raise OSError("could not write %s" % path)
        for sub, lines in (("labels", yolo_lines(boxes, hw, hulls)),
                           ("ignore", yolo_lines(unlabelled, hw))):
            with open(os.path.join(out, sub, split, name + ".txt"), "w") as f:
                f.write("".join(line + "\n" for line in lines))
    return stop - start


def init_worker():
    # type: () -> None
    # One OpenCV thread per process: the pool already fills the cores.
    cv2.setNumThreads(1)


def _remove_stale(out, split, count):
    # type: (str, str, int) -> None
    """Delete images / labels of this generator numbered >= count (left by a bigger run)."""
    for sub in SUBFOLDERS:
        folder = os.path.join(out, sub, split)
        for name in os.listdir(folder):
            index = image_index(name, split)
            if index is not None and index >= count:
                os.remove(os.path.join(folder, name))


class Progress:
    """One status line on stderr: count, rate, ETA (rewritten in place on a terminal)."""

    def __init__(self, label, total, stream=None, every_s=1.0):
        # type: (str, int, Optional[TextIO], float) -> None
        self.label, self.total = label, total
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every_s = every_s if self.tty else max(every_s, 10.0)
        self.start = time.monotonic()
        self.last = -1e9
        self.done = 0

    def update(self, n):
        # type: (int) -> None
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every_s or self.done >= self.total:
            self.last = now
            self._show(now)

    def _show(self, now):
        # type: (float) -> None
        elapsed = max(now - self.start, 1e-6)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        text = "%s: %d/%d images, %.1f img/s, ETA %dm%02ds" % (
            self.label, self.done, self.total, rate, int(left // 60), int(left % 60))
        end = "\n" if self.done >= self.total or not self.tty else ""
        self.stream.write(("\r" if self.tty else "") + text + end)
        self.stream.flush()


def _tasks(out, split, count, seed, long_side, workers, small_share=0.0, negatives=NegativeMix()):
    # type: (str, str, int, int, int, int, float, NegativeMix) -> Iterator[Tuple[str, str, int, int, int, int, float, NegativeMix]]
    """Index ranges to hand out: CHUNK images, smaller for small runs so all workers get some."""
    chunk = max(1, min(CHUNK, count // (4 * workers)))
    for start in range(0, count, chunk):
        yield (out, split, start, min(start + chunk, count), seed, long_side, small_share, negatives)


def generate(out, counts, seed, workers=1, long_side=640, progress=True, small_share=0.0,
             test_long_side=None, negatives=NegativeMix()):
    # type: (str, Dict[str, int], int, int, int, bool, float, Optional[int], NegativeMix) -> None
    """Write the data set: counts maps split -> number of images; the test split's images
    have ``test_long_side`` pixels on their long side (default: ``long_side``)."""
    sides = {split: long_side for split in SPLITS}
    if test_long_side is not None:
        sides["test"] = test_long_side
    for split in SPLITS:
        # ignore/ only where this run writes: an empty one beside an older split's images would
        # read as "no unlabelled numerals" rather than "not listed" (evaluate)
        for sub in SUBFOLDERS if counts.get(split, 0) > 0 else ("images", "labels"):
            os.makedirs(os.path.join(out, sub, split), exist_ok=True)
        if counts.get(split, 0) > 0:
            _remove_stale(out, split, counts[split])
    pool = None
    if workers > 1:
        # spawn: a forked child can inherit OpenCV's thread pool in a locked state.
        pool = multiprocessing.get_context("spawn").Pool(workers, initializer=init_worker)
    else:
        init_worker()
    try:
        for split in SPLITS:
            count = counts.get(split, 0)
            if count <= 0:
                continue
            bar = Progress(split, count) if progress else None
            tasks = _tasks(out, split, count, seed, sides[split], workers, small_share, negatives)
            results = pool.imap_unordered(_write_range, tasks) if pool else map(_write_range, tasks)
            for n in results:
                if bar:
                    bar.update(n)
    except BaseException:
        # A failure or Ctrl-C: drop the queued work instead of waiting for it.
        if pool is not None:
            pool.terminate()
        raise
    if pool is not None:
        pool.close()
        pool.join()
    write_data_yaml(out)
    with open(os.path.join(out, "generator.json"), "w", encoding="utf-8") as f:
        json.dump({"seed": seed, "counts": {s: counts.get(s, 0) for s in SPLITS}, "long_side": long_side,
                   "test_long_side": sides["test"],
                   "ink_splits": INK_SPLIT, "small_share": small_share,
                   "negatives": negatives._asdict()}, f, indent=1, ensure_ascii=False)


class GeneratorRecord(NamedTuple):
    """What generate wrote to DIR/generator.json: the settings every image was drawn with."""
    seed: int
    long_side: int
    test_long_side: int
    small_share: float
    negatives: NegativeMix  # the train split's; val and test always draw NegativeMix()


def read_generator(out):
    # type: (str) -> GeneratorRecord
    """DIR/generator.json back, or ConfigError naming what to do."""
    path = os.path.join(out, "generator.json")
    try:
        with open(path, encoding="utf-8") as f:
            gen = json.load(f)
        return GeneratorRecord(int(gen["seed"]), int(gen["long_side"]), int(gen["test_long_side"]),
                               float(gen["small_share"]), NegativeMix(**gen["negatives"]))
    except FileNotFoundError:
        raise ConfigError("%s not found: only a data set written by python -m hanja_live.train.dataset "
                          "can be drawn again" % path) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError("%s is not a generator record (%r); regenerate the data set with python -m "
                          "hanja_live.train.dataset" % (path, exc)) from None


def write_data_yaml(out):
    # type: (str) -> str
    """DIR/data.yaml in the layout ultralytics reads; returns its path."""
    data = {
        "path": os.path.abspath(out),
        "train": "images/train",
        "val": "images/val",
        "test": "images/test",
        "nc": len(CLASS_NAMES),
        "names": {i: name for i, name in enumerate(CLASS_NAMES)},
    }
    path = os.path.join(out, "data.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, allow_unicode=True, sort_keys=False)
    return path


def draw_boxes(image, boxes):
    # type: (np.ndarray, np.ndarray) -> np.ndarray
    """A copy of image with each box and its class index drawn (OpenCV cannot draw hanja)."""
    out = image.copy()
    for cls, x1, y1, x2, y2 in np.asarray(boxes).reshape(-1, 5):
        p1, p2 = (int(x1), int(y1)), (int(np.ceil(x2)) - 1, int(np.ceil(y2)) - 1)
        cv2.rectangle(out, p1, p2, (0, 200, 0), 1)
        cv2.putText(out, str(int(cls)), (p1[0], max(p1[1] - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 255), 1, cv2.LINE_AA)
    return out


def write_preview(out, count, seed, long_side=640, small_share=0.0, negatives=NegativeMix()):
    # type: (str, int, int, int, float, NegativeMix) -> List[str]
    """DIR/preview/train_NNNNNN.jpg: the first ``count`` training images with boxes drawn."""
    folder = os.path.join(out, "preview")
    os.makedirs(folder, exist_ok=True)
    paths = []
    for index in range(count):
        image, boxes, _, _ = generate_one(seed, "train", index, long_side, small_share, negatives)
        path = os.path.join(folder, image_name("train", index) + ".jpg")
        if not cv2.imwrite(path, draw_boxes(image, boxes), [cv2.IMWRITE_JPEG_QUALITY, 92]):
            raise OSError("could not write %s" % path)
        paths.append(path)
    return paths


def _count(text):
    # type: (str) -> int
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more, got %d" % value)
    return value


def parse_args(argv=None):
    # type: (Optional[Sequence[str]]) -> argparse.Namespace
    parser = argparse.ArgumentParser(prog="python -m hanja_live.train.dataset", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="data set folder (created)")
    parser.add_argument("--train", type=_count, default=0, help="training images")
    parser.add_argument("--val", type=_count, default=0, help="validation images")
    parser.add_argument("--test", type=_count, default=0, help="test images (held-out ink sources)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--size", type=int, default=640, help="long side of the images in pixels")
    parser.add_argument("--test-size", type=int,
                        help="long side of the test split's images (default: --size), e.g. 1280 to "
                             "score a model on frames as a 720p camera delivers them")
    parser.add_argument("--preview", type=_count, default=0, help="also write N training images with boxes drawn")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.add_argument("--small-share", type=float, default=0.0,
                        help="share of the train split's scattered, negative, line and worksheet scenes "
                             "drawn with small characters only (up to about 7 %% of the frame height); "
                             "default 0")
    parser.add_argument("--negative-pages", type=float, default=0.0,
                        help="share of the train split's scenes made target-free (lookalikes and other "
                             "writing scattered, in rows or in a grid), on top of the target-free pages "
                             "the mix always has (about 20 %%); default 0")
    parser.add_argument("--confusers", default=NegativeMix().confusers,
                        help="negatives the train split draws more often than the rest (default: %(default)s)")
    parser.add_argument("--confuser-share", type=float, default=NegativeMix().confuser_share,
                        help="share of the train split's negatives drawn from --confusers (default %(default)g)")
    return parser.parse_args(argv)


def main(argv=None):
    # type: (Optional[Sequence[str]]) -> int
    args = parse_args(argv)
    for flag, side in (("--size", args.size), ("--test-size", args.test_size)):
        if side is not None and (side < 64 or side % 2):
            raise ConfigError("%s %d: give an even long side of at least 64 pixels, e.g. %s 640" % (flag, side, flag))
    for flag, share in (("--small-share", args.small_share), ("--negative-pages", args.negative_pages),
                        ("--confuser-share", args.confuser_share)):
        if not 0.0 <= share <= 1.0:
            raise ConfigError("%s %g: give a share from 0 to 1, e.g. %s 0.3" % (flag, share, flag))
    unknown = sorted(set(args.confusers) - set(NEGATIVES))
    if unknown or not args.confusers:
        why = "not negatives: " + " ".join(repr(c) for c in unknown) if unknown else "empty"
        raise ConfigError("--confusers %r: %s; give characters from the negatives in "
                          "hanja_live/train/charsets.py" % (args.confusers, why))
    if set(args.confusers) <= NEED_CONTEXT:
        raise ConfigError("--confusers %r: dashes and = are only written in rows among other "
                          "characters, so most pages would draw none; add other negatives, e.g. "
                          "--confusers '丸力-='" % args.confusers)
    if args.workers < 1:
        raise ConfigError("--workers %d: give 1 or more processes" % args.workers)
    counts = {"train": args.train, "val": args.val, "test": args.test}
    if not any(counts.values()) and not args.preview:
        raise ConfigError("nothing to write: give --train/--val/--test counts or --preview N")
    negatives = NegativeMix(args.negative_pages, args.confusers, args.confuser_share)
    if any(counts.values()):
        generate(args.out, counts, args.seed, args.workers, args.size, progress=not args.quiet,
                 small_share=args.small_share, test_long_side=args.test_size, negatives=negatives)
        print(os.path.join(args.out, "data.yaml"))
    if args.preview:
        paths = write_preview(args.out, args.preview, args.seed, args.size, args.small_share, negatives)
        print("%d preview images in %s" % (len(paths), os.path.dirname(paths[0])))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConfigError as exc:
        sys.stderr.write("error: %s\n" % exc)
        sys.exit(2)
