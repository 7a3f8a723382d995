"""Render the bundled demo clip: a hand-held camera drifting over handwritten pages.

    python -m hanja_live.train.demo_clip --out hanja_live/assets/demo.mp4 --seed 0

Four segments hold about 0, 5, 20 and 40 target numerals in view (the first shows paper with
only lookalike characters and doodles). Each segment draws one big page once, then every
frame warps it through a camera pose that follows a smooth path (pan, zoom, roll, a little
tilt and hand shake) and adds the light, lens and sensor effects of the training scenes.
Ink comes from the held-out "test" sources, so the demo is not training data. Beside the
clip, ``<name>.segments.json`` records each segment's frame range and target counts.
"""

import argparse
import json
import math
import os
import sys
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, TextIO, Tuple

import cv2
import numpy as np

from hanja_live.errors import ConfigError, SinkError
from hanja_live.train import scene
from hanja_live.train.charsets import TARGETS
from hanja_live.train.compose import PageWriter, Placed, draw_marks, frame_boxes, negatives_for

PAGE_SCALE = 1.5  # page pixels per frame pixel at zoom 1: the page stays sharp when zooming in
INK_SPLIT = "test"
# One pen per page kind: dry-erase marker on the whiteboard, ballpoints on paper (dark enough
# that every counted numeral is plainly visible).
SEGMENT_PENS = {"white": "ballpoint_black", "whiteboard": "marker_blue", "notebook": "ballpoint_blue",
                "grid": "ballpoint_black"}


class Pose(NamedTuple):
    """Camera pose for one frame: page point at the frame centre (frame-pixel units at
    zoom 1, relative to the page centre), zoom and angles in degrees."""
    cx: float
    cy: float
    zoom: float
    roll: float
    pitch: float
    yaw: float


def _wave(rng, t, amplitude, lo_hz=0.04, hi_hz=0.14):
    # type: (np.random.Generator, np.ndarray, float, float, float) -> np.ndarray
    """Smooth drift: two slow sines of random frequency and phase, peak about ``amplitude``."""
    out = np.zeros_like(t)
    for weight in (0.65, 0.35):
        freq = rng.uniform(lo_hz, hi_hz)
        out += weight * np.sin(2 * math.pi * freq * t + rng.uniform(0, 2 * math.pi))
    return amplitude * out


def _shake(rng, n, amplitude):
    # type: (np.random.Generator, int, float) -> np.ndarray
    """Hand tremor: noise smoothed over a few frames, rms about ``amplitude``."""
    raw = rng.normal(0, 1, n + 8)
    kernel = np.hanning(7)
    smooth = np.convolve(raw, kernel / kernel.sum(), mode="same")[4:4 + n]
    return amplitude * smooth / max(float(smooth.std()), 1e-6)


def camera_path(rng, n_frames, fps, frame_hw):
    # type: (np.random.Generator, int, float, Tuple[int, int]) -> List[Pose]
    """A slow, smooth hand-held path over the page centre."""
    h, w = frame_hw
    t = np.arange(n_frames) / float(fps)
    cx = _wave(rng, t, 0.07 * w) + _shake(rng, n_frames, 0.0015 * w)
    cy = _wave(rng, t, 0.05 * h) + _shake(rng, n_frames, 0.0015 * w)
    zoom = 1.02 + _wave(rng, t, 0.08)
    roll = rng.uniform(-3, 3) + _wave(rng, t, 3.0)
    pitch = _wave(rng, t, 6.0)
    yaw = _wave(rng, t, 5.0)
    return [Pose(*v) for v in zip(cx, cy, zoom, roll, pitch, yaw)]


def pose_homography(pose, frame_hw, origin):
    # type: (Pose, Tuple[int, int], Tuple[float, float]) -> np.ndarray
    """Page canvas pixels -> frame pixels; ``origin`` is the page centre in canvas pixels."""
    to_units = pose.zoom / PAGE_SCALE
    centre_x = origin[0] + pose.cx * PAGE_SCALE
    centre_y = origin[1] + pose.cy * PAGE_SCALE
    scale = np.array([[to_units, 0, -to_units * centre_x], [0, to_units, -to_units * centre_y], [0, 0, 1]])
    return scene.camera_homography(frame_hw, pose.pitch, pose.yaw, pose.roll, 1.0) @ scale


def _page_extent(poses, frame_hw):
    # type: (List[Pose], Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]
    """Bounding box (lo, hi) in page pixels relative to the page centre of everything seen."""
    h, w = frame_hw
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], np.float64).T
    seen = []
    for pose in poses:
        back = np.linalg.solve(pose_homography(pose, frame_hw, (0.0, 0.0)), corners)
        seen.append((back[:2] / back[2]).T)
    pts = np.concatenate(seen)
    return pts.min(axis=0), pts.max(axis=0)


def _always_visible(poses, frame_hw, origin, margin=0.06):
    # type: (List[Pose], Tuple[int, int], Tuple[float, float], float) -> Tuple[float, float, float, float]
    """The largest centred page rect (frame aspect) that every frame of the path sees, inset
    by ``margin`` of the frame size: where the counted characters go."""
    h, w = frame_hw
    homs = [pose_homography(p, frame_hw, origin) for p in poses[::max(1, len(poses) // 120)]]
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 7), np.linspace(-1, 1, 7)), -1).reshape(-1, 2)

    def fits(k):
        # type: (float) -> bool
        pts = np.column_stack([origin[0] + grid[:, 0] * k * w / 2, origin[1] + grid[:, 1] * k * h / 2])
        for hom in homs:
            uv = scene.project(hom, pts)
            if ((uv[:, 0] < margin * w) | (uv[:, 0] > (1 - margin) * w) |
                    (uv[:, 1] < margin * h) | (uv[:, 1] > (1 - margin) * h)).any():
                return False
        return True

    lo, hi = 0.0, 2.0 * PAGE_SCALE
    for _ in range(24):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return (origin[0] - lo * w / 2, origin[1] - lo * h / 2, origin[0] + lo * w / 2, origin[1] + lo * h / 2)


class DemoWriter(PageWriter):
    """Writes like the training scenes, but with full-strength ink: a numeral the renderer drew
    in faint pencil would make the demo's counts depend on luck."""

    def render(self, char, em_px, pen=None):
        # type: (str, float, Optional[scene.Pen]) -> np.ndarray
        mask = super().render(char, em_px, pen)
        inked = mask[mask > 0.05]
        if inked.size == 0:
            return mask
        peak = max(float(np.percentile(inked, 90)), 0.3)
        return np.minimum(mask / np.float32(peak), np.float32(1.0))


# -- page layouts --------------------------------------------------------------------------
def _layout_doodles(writer, rng, frame_h):
    # type: (PageWriter, np.random.Generator, int) -> None
    """No numerals: lookalike CJK, Hangul, Latin words and doodles all over the page."""
    negatives = negatives_for(writer.split, in_context=False)
    for _ in range(int(rng.integers(14, 22))):
        em = rng.uniform(0.06, 0.16) * frame_h * PAGE_SCALE
        writer.write_anywhere(negatives[int(rng.integers(len(negatives)))], em, pad_frac=0.3)
    draw_marks(writer, rng, int(rng.integers(5, 9)), 0.15 * frame_h * PAGE_SCALE)


def _layout_big(writer, rng, count, frame_h):
    # type: (PageWriter, np.random.Generator, int, int) -> int
    """A few large numerals and a couple of lookalikes, spread over the visible region."""
    x0, y0, x1, y1 = writer.region
    cols = int(math.ceil(math.sqrt(count * 16.0 / 9.0)))
    rows = int(math.ceil(count / float(cols)))
    cells = [(r, c) for r in range(rows) for c in range(cols)]
    order = rng.permutation(len(cells))[:count]
    cw, ch = (x1 - x0) / cols, (y1 - y0) / rows
    chars = rng.permutation(len(TARGETS))[:count]
    written = 0
    for k, i in enumerate(order):
        r, c = cells[i]
        em = min(cw, ch) * rng.uniform(0.6, 0.75)
        cx = x0 + (c + 0.5) * cw + rng.uniform(-0.1, 0.1) * cw
        cy = y0 + (r + 0.5) * ch + rng.uniform(-0.1, 0.1) * ch
        written += writer.write(TARGETS[int(chars[k % len(chars)])], cx, cy, em) is not None
    negatives = negatives_for(writer.split, in_context=False)
    for _ in range(3):
        writer.write_anywhere(negatives[int(rng.integers(len(negatives)))], 0.12 * frame_h * PAGE_SCALE,
                              pad_frac=0.25)
    return written


def lines_fit(count, region):
    # type: (int, Tuple[float, float, float, float]) -> Tuple[int, float]
    """(rows, line pitch) that fit ``count`` numerals, plus room for a lookalike or two per
    row, into the region at the largest writing size."""
    x0, y0, x1, y1 = region
    best = (1, 0.0)
    for rows in range(1, 9):
        per_row = int(math.ceil(count / float(rows))) + 1
        # Characters 0.75 of the line pitch tall, 1.2 of their height apart.
        pitch = min((y1 - y0) / (rows + 0.3), (x1 - x0) / (per_row * 1.2 * 0.75))
        if pitch > best[1]:
            best = (rows, pitch)
    return best


def _layout_lines(writer, rng, count, rows, pitch, origin):
    # type: (PageWriter, np.random.Generator, int, int, float, Tuple[float, float]) -> int
    """Notes in rows on ruled paper: the numerals with a lookalike or two among them."""
    x0, y0, x1, y1 = writer.region
    per_row = int(math.ceil(count / float(rows)))
    em = pitch * 0.75
    first_line = origin[1] + math.floor((y0 - origin[1]) / pitch) * pitch
    negatives = negatives_for(writer.split)
    room = int((x1 - x0) // (em * 1.2))
    written = 0
    for r in range(rows):
        n = min(per_row, count - written)
        if n <= 0:
            break
        chars = [TARGETS[int(i)] for i in rng.integers(0, len(TARGETS), n)]
        for _ in range(int(rng.integers(0, max(0, room - n) + 1)) if room > n else 0):
            chars.insert(int(rng.integers(0, len(chars) + 1)), negatives[int(rng.integers(len(negatives)))])
            if len(chars) >= n + 2:
                break
        step = em * 1.2
        x = x0 + step / 2 + rng.uniform(0, max(0.0, (x1 - x0) - step * len(chars)))
        cy = first_line + r * pitch + pitch / 2
        for char in chars:
            item = writer.write(char, x + rng.normal(0, em * 0.03), cy + rng.normal(0, em * 0.03),
                                em * rng.uniform(0.92, 1.05))
            if item is not None:
                written += item.cls >= 0
            x += step
    return written


def _layout_worksheet(writer, rng, count, pitch, origin):
    # type: (PageWriter, np.random.Generator, int, float, Tuple[float, float]) -> int
    """A practice grid: each row one numeral written again and again, or counting 一 to 十."""
    x0, y0, x1, y1 = writer.region
    cols = max(1, int((x1 - x0) // pitch))
    rows = int(math.ceil(count / float(cols)))
    gx = origin[0] + math.floor((x0 - origin[0]) / pitch) * pitch
    gy = origin[1] + math.floor((y0 - origin[1]) / pitch) * pitch
    written = 0
    for r in range(rows):
        n = min(cols, count - written)
        if rng.random() < 0.6:
            chars = [TARGETS[int(rng.integers(len(TARGETS)))]] * n
        else:
            start = int(rng.integers(len(TARGETS)))
            chars = [TARGETS[(start + i) % len(TARGETS)] for i in range(n)]
        for c, char in enumerate(chars):
            cx = gx + (c + 0.5) * pitch + rng.normal(0, pitch * 0.04)
            cy = gy + (r + 0.5) * pitch + rng.normal(0, pitch * 0.04)
            written += writer.write(char, cx, cy, pitch * rng.uniform(0.72, 0.88)) is not None
    return written


class Segment(NamedTuple):
    page: np.ndarray  # uint8 BGR page canvas
    origin: Tuple[float, float]  # page centre in canvas pixels
    poses: List[Pose]
    placed: List[Placed]
    paper: str
    light: np.ndarray
    glare: Optional[np.ndarray]


def build_segment(rng, count, n_frames, fps, frame_hw):
    # type: (np.random.Generator, int, int, float, Tuple[int, int]) -> Segment
    """Draw the page for a segment holding ``count`` numerals and plan its camera path."""
    h, w = frame_hw
    poses = camera_path(rng, n_frames, fps, frame_hw)
    lo, hi = _page_extent(poses, frame_hw)
    lo, hi = lo - 8, hi + 8
    origin = (float(-lo[0]), float(-lo[1]))
    page_hw = (int(math.ceil(hi[1] - lo[1])), int(math.ceil(hi[0] - lo[0])))
    region = _always_visible(poses, frame_hw, origin)
    if count == 0:
        paper, pitch = "white", 0.08 * h * PAGE_SCALE
    elif count <= 8:
        paper, pitch = "whiteboard", 0.1 * h * PAGE_SCALE
    elif count <= 24:
        paper = "notebook"
        rows, pitch = lines_fit(count, region)
    else:
        paper = "grid"
        cols = int(math.ceil(math.sqrt(count * 16.0 / 9.0)))
        pitch = min((region[2] - region[0]) / (cols + 0.2), (region[3] - region[1]) / (math.ceil(count / cols) + 0.2))
    # Rulings start just outside the region so that the first row of writing fits inside it.
    grid_origin = (region[0] - rng.uniform(0, 0.3) * pitch, region[1] - rng.uniform(0, 0.3) * pitch)
    page = scene.make_paper(rng, page_hw, paper, pitch, grid_origin)
    pen = scene.make_pen(rng, SEGMENT_PENS[paper])
    whole = (0.0, 0.0, float(page_hw[1]), float(page_hw[0]))
    writer = DemoWriter(rng, page, INK_SPLIT, pen, whole, region=whole if count == 0 else region)
    if count == 0:
        _layout_doodles(writer, rng, h)
    elif count <= 8:
        _layout_big(writer, rng, count, h)
    elif count <= 24:
        _layout_lines(writer, rng, count, rows, pitch, grid_origin)
    else:
        _layout_worksheet(writer, rng, count, pitch, grid_origin)
    # The camera averages over its pixels: soften the page before it is sampled down.
    page = cv2.GaussianBlur(page, (0, 0), 0.5 * PAGE_SCALE)
    # Exposure is set once from the first frame, as a camera with exposure locked.
    first = cv2.warpPerspective(page, pose_homography(poses[0], frame_hw, origin), (w, h), flags=cv2.INTER_LINEAR)
    light, glare = scene.light_fields(rng, first, paper, low_light=False)
    return Segment(page, origin, poses, writer.placed, paper, light, glare)


def render_frame(rng, segment, index, frame_hw):
    # type: (np.random.Generator, Segment, int, Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]
    """One BGR frame of a segment and its hom (page -> frame)."""
    h, w = frame_hw
    hom = pose_homography(segment.poses[index], frame_hw, segment.origin)
    frame = cv2.warpPerspective(segment.page, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    frame = cv2.GaussianBlur(frame, (0, 0), 0.6)
    img = scene.apply_light(frame, segment.light, segment.glare)
    # Mild, per-frame noise: a clean camera in good light (and noise costs bitrate).
    img = scene.add_sensor_noise(rng, img, 0.004)
    return scene.to_uint8(img), hom


def open_writer(path, fps, frame_hw):
    # type: (str, float, Tuple[int, int]) -> Tuple[cv2.VideoWriter, str]
    """H.264 ('avc1') when this OpenCV's FFmpeg can write it, else MPEG-4 part 2 ('mp4v')."""
    h, w = frame_hw
    for fourcc in ("avc1", "mp4v"):
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
        if writer.isOpened():
            return writer, fourcc
        writer.release()
    raise SinkError("OpenCV cannot write %s with avc1 or mp4v; install an OpenCV built with FFmpeg "
                    "(Debian: sudo apt-get install python3-opencv)" % path)


def segments_path(video_path):
    # type: (str) -> str
    """demo.mp4 -> demo.segments.json beside it."""
    return os.path.splitext(video_path)[0] + ".segments.json"


def segment_bounds(n_segments, total):
    # type: (int, int) -> List[Tuple[int, int]]
    """[start, stop) frame ranges splitting ``total`` frames evenly into segments."""
    edges = np.linspace(0, total, n_segments + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def iter_frames(seed, counts, total, fps, frame_hw):
    # type: (int, Sequence[int], int, float, Tuple[int, int]) -> Iterator[Tuple[int, Segment, np.ndarray, np.ndarray]]
    """(segment index, segment, BGR frame, hom page -> frame) for every frame of the clip.

    Each segment draws from its own generator (seed, segment index), so a segment looks the
    same whatever comes before it.
    """
    for k, (start, stop) in enumerate(segment_bounds(len(counts), total)):
        rng = np.random.default_rng([int(seed), k])
        segment = build_segment(rng, int(counts[k]), stop - start, fps, frame_hw)
        for i in range(stop - start):
            frame, hom = render_frame(rng, segment, i, frame_hw)
            yield k, segment, frame, hom


def render_clip(out, seed, counts=(0, 5, 20, 40), seconds=48.0, fps=30.0, frame_hw=(720, 1280), log=None):
    # type: (str, int, Sequence[int], float, float, Tuple[int, int], Optional[TextIO]) -> Dict[str, object]
    """Write the clip and its segments JSON; returns the JSON's content."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    total = max(len(counts), int(round(seconds * fps)))
    bounds = segment_bounds(len(counts), total)
    writer, fourcc = open_writer(out, fps, frame_hw)
    segments = []  # type: List[Dict[str, object]]
    seen = [[] for _ in counts]  # type: List[List[int]]
    placed = [0] * len(counts)
    papers = [""] * len(counts)
    try:
        for k, segment, frame, hom in iter_frames(seed, counts, total, fps, frame_hw):
            writer.write(frame)
            seen[k].append(len(frame_boxes(segment.placed, hom, frame_hw)))
            placed[k] = sum(1 for p in segment.placed if p.cls >= 0)
            papers[k] = segment.paper
    finally:
        writer.release()
    for k, (start, stop) in enumerate(bounds):
        segments.append({"index": k, "start_frame": start, "end_frame": stop - 1,
                         "start_s": round(start / fps, 3), "end_s": round(stop / fps, 3),
                         "targets": placed[k], "visible_min": min(seen[k]), "visible_max": max(seen[k]),
                         "paper": papers[k]})
        if log is not None:
            log.write("segment %d: frames %d-%d on %s, %d numerals written, %d-%d in view\n"
                      % (k, start, stop - 1, papers[k], placed[k], min(seen[k]), max(seen[k])))
    info = {"video": os.path.basename(out), "fourcc": fourcc, "fps": fps, "width": frame_hw[1],
            "height": frame_hw[0], "frames": total, "seed": seed, "ink_split": INK_SPLIT,
            "segments": segments}
    with open(segments_path(out), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return info


def _counts(text):
    # type: (str) -> List[int]
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("give comma-separated numbers, e.g. 0,5,20,40") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError("give one count of 0 or more per segment, e.g. 0,5,20,40")
    return values


def parse_args(argv=None):
    # type: (Optional[Sequence[str]]) -> argparse.Namespace
    parser = argparse.ArgumentParser(prog="python -m hanja_live.train.demo_clip",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join("hanja_live", "assets", "demo.mp4"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=48.0, help="clip length")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--counts", type=_counts, default=[0, 5, 20, 40],
                        help="numerals in view per segment (default 0,5,20,40)")
    return parser.parse_args(argv)


def main(argv=None):
    # type: (Optional[Sequence[str]]) -> int
    args = parse_args(argv)
    if args.width < 64 or args.height < 64 or args.width % 2 or args.height % 2:
        raise ConfigError("--width %d --height %d: give even sizes of at least 64 pixels, e.g. 1280 x 720"
                          % (args.width, args.height))
    if args.fps <= 0 or args.seconds <= 0:
        raise ConfigError("--fps and --seconds must be positive, e.g. --fps 30 --seconds 48")
    cv2.setNumThreads(max(1, os.cpu_count() or 1))
    info = render_clip(args.out, args.seed, args.counts, args.seconds, args.fps, (args.height, args.width),
                       log=sys.stderr)
    print("%s: %s frames, %s, %.1f MB; segments in %s" % (
        args.out, info["frames"], info["fourcc"], os.path.getsize(args.out) / 1e6, segments_path(args.out)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ConfigError, SinkError) as exc:
        sys.stderr.write("error: %s\n" % exc)
        sys.exit(2)
