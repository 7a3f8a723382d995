"""One synthetic training scene: handwriting on paper, seen by a hand-held camera.

``make_sample(rng, split, size)`` returns the BGR uint8 frame, its boxes (N, 5) float32
[cls, x1, y1, x2, y2] in frame pixels and, per box, the convex hull of the same ink (K, 2).
Boxes come from each character's own ink mask warped by the same homography as the page and
thresholded, so they bound the ink as it appears in the frame; characters cut by the frame
edge keep a (clipped) box only when most of their ink is visible. Negatives (lookalike CJK,
Hangul, Latin, digits, signs) are written the same way and get no box.

The hulls are for training: ultralytics rotates, shears and warps each training image, and
from a box alone it can only bound the box's warped corners, which with our settings makes
a box 5-7 % too large and a flat 一 16 % too tall (median; python -m
hanja_live.train.augment_boxes measures it). From a polygon label it bounds the warped polygon,
and the hull's warped bounds are the warped ink's.
"""

import math
from functools import lru_cache
from typing import Iterator, List, NamedTuple, Optional, Tuple

import cv2
import numpy as np

from hanja_live.train import scene
from hanja_live.train.charsets import CONFUSERS, NEGATIVES, TARGETS
from hanja_live.train.handwriting import render_ink, sources_for

INK_THRESHOLD = 0.25  # warped alpha above this counts as ink for the box
MIN_VISIBLE = 0.6  # fraction of a character's ink that must be inside the frame to label it
MIN_EM_FRAC, MAX_EM_FRAC = 0.025, 0.60  # character (em box) height / frame height
SMALL_MAX_FRAC = 0.07  # about the largest character of a "small" scene (make_sample's small_share)
MIN_CONTRAST = 14.0  # grey levels ink must be darker than the paper around it to be labelled
# A numeral the frame shows but frame_labels leaves out (under MIN_VISIBLE of it inside the frame, or
# fainter than MIN_CONTRAST) is still a numeral to a reader: scoring ignores detections on it
# (frame_unlabelled) when at least this share of its ink is inside and it is at least half as dark.
UNLABELLED_MIN_VISIBLE = 0.2
UNLABELLED_CONTRAST_SHARE = 0.5  # of MIN_CONTRAST
MAX_CHARS = 30  # per scene; bounds the rendering time of dense worksheets

LAYOUTS = ("single", "scattered", "lines", "worksheet", "negatives", "empty")
LAYOUT_WEIGHTS = (0.17, 0.32, 0.21, 0.24, 0.03, 0.03)
# Training sees more target-free pages than the test mix: the detector's false positives are
# lookalikes on pages without numerals (test set, 2026-11: 0.44 per such page).
TRAIN_LAYOUT_WEIGHTS = (0.15, 0.29, 0.19, 0.22, 0.10, 0.05)
# Share of training negatives drawn from CONFUSERS rather than uniformly from all negatives.
CONFUSER_SHARE = 0.3
# Layouts a target-free page of NegativeMix.page_share takes: lookalikes scattered, in rows, in a grid.
NEGATIVE_PAGE_LAYOUTS = ("scattered", "lines", "worksheet")


class NegativeMix(NamedTuple):
    """What the train split writes that must not be detected; val and test keep the defaults.

    The defaults draw the same scenes as before this option existed (no extra random number)."""
    page_share: float = 0.0  # share of scenes made target-free: negatives only, scattered / in rows / in a grid
    confusers: str = CONFUSERS  # negatives drawn more often than the rest
    confuser_share: float = CONFUSER_SHARE  # share of negatives drawn from ``confusers``


class Placed(NamedTuple):
    """A character written on the page: top-left (x, y) in page pixels and its alpha mask."""
    char: str
    cls: int  # class id in TARGETS order; -1 for negatives
    x: int
    y: int
    mask: np.ndarray


class Scene(NamedTuple):
    """A drawn scene before labelling (draw_scene)."""
    image: np.ndarray  # BGR uint8 (h, w, 3), as the camera delivers it
    placed: List[Placed]  # every character written on the page, targets and negatives
    hom: np.ndarray  # (3, 3) page pixels -> frame pixels


# Negatives that differ from a numeral only by their size next to other writing: a dash is a
# short 一, "=" a squat 二. Written alone, nothing tells them apart, so they appear only in
# rows of writing, where the neighbours give the scale.
NEED_CONTEXT = frozenset("-\u2013\u2212=")


@lru_cache(maxsize=None)
def negatives_for(split, in_context=True):
    # type: (str, bool) -> Tuple[str, ...]
    """The negatives the ink renderer can draw for this split (without NEED_CONTEXT ones
    unless they are written among other characters)."""
    return tuple(c for c in NEGATIVES if sources_for(c, split) and (in_context or c not in NEED_CONTEXT))


def warp_mask(mask, x, y, hom, out_hw):
    # type: (np.ndarray, int, int, np.ndarray, Tuple[int, int]) -> Optional[Tuple[np.ndarray, int, int, Tuple[int, int, int, int]]]
    """A page mask (top-left at page (x, y)) as the frame sees it, or None when off-frame.

    Returns (warped, x0, y0, inside): warped float32 covers the mask's quad in the frame with
    its top-left at frame (x0, y0), possibly beyond the frame; inside = (cx0, cy0, cx1, cy1)
    is the part of ``warped`` within the frame. Only the mask's footprint is warped: the
    homography is shifted so that the small buffer covers the character's quad.
    """
    h, w = out_hw
    mh, mw = mask.shape
    quad = scene.project(hom, np.array([[x, y], [x + mw, y], [x + mw, y + mh], [x, y + mh]], np.float64))
    x0, y0 = int(math.floor(quad[:, 0].min())) - 1, int(math.floor(quad[:, 1].min())) - 1
    x1, y1 = int(math.ceil(quad[:, 0].max())) + 2, int(math.ceil(quad[:, 1].max())) + 2
    if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
        return None
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
    place = np.array([[1, 0, x], [0, 1, y], [0, 0, 1]], np.float64)
    warped = cv2.warpPerspective(mask, shift @ hom @ place, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    inside = (max(0, -x0), max(0, -y0), min(x1 - x0, w - x0), min(y1 - y0, h - y0))
    return warped, x0, y0, inside


def frame_ink(mask, x, y, hom, out_hw, threshold=INK_THRESHOLD, min_visible=MIN_VISIBLE):
    # type: (np.ndarray, int, int, np.ndarray, Tuple[int, int], float, float) -> Optional[Tuple[Tuple[int, int, int, int], np.ndarray]]
    """(box, hull) of a page mask's ink in the frame, clipped to the frame; None when less
    than ``min_visible`` of the ink is inside the frame.

    box (x1, y1, x2, y2) bounds the ink pixels; hull (K, 2) float32 is the convex hull of
    their corners, so it holds all the ink and its bounds are the box.
    """
    found = _ink_in_frame(mask, x, y, hom, out_hw, threshold)
    if found is None or found[0] < min_visible * found[1]:
        return None
    return found[2], found[3]


def _ink_in_frame(mask, x, y, hom, out_hw, threshold=INK_THRESHOLD):
    # type: (np.ndarray, int, int, np.ndarray, Tuple[int, int], float) -> Optional[Tuple[int, int, Tuple[int, int, int, int], np.ndarray]]
    """(ink pixels inside the frame, all ink pixels, box, hull) of frame_ink, whatever the share
    inside; None when no ink lands inside."""
    found = warp_mask(mask, x, y, hom, out_hw)
    if found is None:
        return None
    warped, x0, y0, (cx0, cy0, cx1, cy1) = found
    ink = warped > threshold
    seen = ink[cy0:cy1, cx0:cx1]
    n_seen = np.count_nonzero(seen)
    if n_seen == 0:
        return None
    pixels = cv2.convexHull(cv2.findNonZero(seen.view(np.uint8))).reshape(-1, 1, 2)  # top-left corners
    corners = (pixels + np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.int32)).reshape(-1, 1, 2)
    hull = cv2.convexHull(corners).reshape(-1, 2) + np.array([x0 + cx0, y0 + cy0])
    (x1, y1), (x2, y2) = hull.min(axis=0), hull.max(axis=0)
    return n_seen, np.count_nonzero(ink), (int(x1), int(y1), int(x2), int(y2)), hull.astype(np.float32)


def frame_box(mask, x, y, hom, out_hw, threshold=INK_THRESHOLD, min_visible=MIN_VISIBLE):
    # type: (np.ndarray, int, int, np.ndarray, Tuple[int, int], float, float) -> Optional[Tuple[int, int, int, int]]
    """The box (x1, y1, x2, y2) of ``frame_ink``, or None."""
    found = frame_ink(mask, x, y, hom, out_hw, threshold, min_visible)
    return None if found is None else found[0]


def ink_contrast(gray, mask, x, y, hom):
    # type: (np.ndarray, np.ndarray, int, int, np.ndarray) -> float
    """Grey levels by which a written character is darker than the paper right around it.

    Glare, overexposure or a faint pencil can wash ink out; a box on ink nobody can see
    would teach the detector to hallucinate.
    """
    pad = 3
    grown = cv2.copyMakeBorder(mask, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    found = warp_mask(grown, x - pad, y - pad, hom, (gray.shape[0], gray.shape[1]))
    if found is None:
        return 0.0
    warped, x0, y0, (cx0, cy0, cx1, cy1) = found
    warped = warped[cy0:cy1, cx0:cx1]
    roi = gray[y0 + cy0:y0 + cy1, x0 + cx0:x0 + cx1]
    # Thin or small strokes never reach full coverage once resampled: compare the stroke
    # cores (at least half the peak coverage) with pixels that hold no ink at all.
    ink, paper = roi[warped >= 0.5 * max(float(warped.max()), INK_THRESHOLD)], roi[warped < 0.02]
    if ink.size == 0 or paper.size == 0:
        return 0.0
    return float(np.median(paper)) - float(np.median(ink))


def _seen(placed, hom, out_hw, image, min_contrast, negatives, unlabelled=False):
    # type: (List[Placed], np.ndarray, Tuple[int, int], Optional[np.ndarray], float, bool, bool) -> Iterator[Tuple[Placed, Tuple[Tuple[int, int, int, int], np.ndarray], bool]]
    """(item, frame_ink's (box, hull), True) for the targets among ``placed``, or with ``negatives``
    the negatives, that the frame shows: most of their ink inside it and, given the final BGR
    ``image``, at least ``min_contrast`` grey levels darker than the paper around them. With
    ``unlabelled`` also (item, (box of its ink inside), False) for those a reader still sees
    (frame_unlabelled's rule). One warp of each item's ink and one contrast measure serve both."""
    gray = None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    for item in placed:
        if (item.cls < 0) != negatives:
            continue
        found = _ink_in_frame(item.mask, item.x, item.y, hom, out_hw)
        if found is None:
            continue
        n_seen, total, box, hull = found
        inside = n_seen >= MIN_VISIBLE * total
        if not inside and not (unlabelled and n_seen >= UNLABELLED_MIN_VISIBLE * total):
            continue
        contrast = float("inf") if gray is None else ink_contrast(gray, item.mask, item.x, item.y, hom)
        if inside and contrast >= min_contrast:
            yield item, (box, hull), True
        elif unlabelled and contrast >= min_contrast * UNLABELLED_CONTRAST_SHARE:
            yield item, (box, hull), False


def frame_targets(placed, hom, out_hw, image=None, min_contrast=MIN_CONTRAST):
    # type: (List[Placed], np.ndarray, Tuple[int, int], Optional[np.ndarray], float) -> Tuple[np.ndarray, List[np.ndarray], np.ndarray]
    """frame_labels' boxes and hulls, and frame_unlabelled's boxes, from one walk over the targets."""
    rows, hulls, left_out = [], [], []
    for item, (box, hull), labelled in _seen(placed, hom, out_hw, image, min_contrast, negatives=False,
                                             unlabelled=True):
        if labelled:
            rows.append((item.cls,) + box)
            hulls.append(hull)
        else:
            left_out.append((item.cls,) + box)
    return np.array(rows, np.float32).reshape(-1, 5), hulls, np.array(left_out, np.float32).reshape(-1, 5)


def frame_labels(placed, hom, out_hw, image=None, min_contrast=MIN_CONTRAST):
    # type: (List[Placed], np.ndarray, Tuple[int, int], Optional[np.ndarray], float) -> Tuple[np.ndarray, List[np.ndarray]]
    """Boxes (N, 5) float32 [cls, x1, y1, x2, y2] and their ink hulls (N of (K, 2) float32)
    for the targets among ``placed`` seen in the frame.

    With the final BGR ``image``, characters whose ink is washed out (less than
    ``min_contrast`` grey levels darker than the paper around them) get no box.
    """
    boxes, hulls, _ = frame_targets(placed, hom, out_hw, image, min_contrast)
    return boxes, hulls


def frame_negatives(placed, hom, out_hw, image=None, min_contrast=MIN_CONTRAST):
    # type: (List[Placed], np.ndarray, Tuple[int, int], Optional[np.ndarray], float) -> List[Tuple[str, Tuple[int, int, int, int]]]
    """(character, box (x1, y1, x2, y2)) of each negative among ``placed`` that the frame shows,
    by the rules frame_labels applies to targets."""
    return [(item.char, box) for item, (box, _), _ in _seen(placed, hom, out_hw, image, min_contrast, negatives=True)]


def frame_unlabelled(placed, hom, out_hw, image, min_contrast=MIN_CONTRAST):
    # type: (List[Placed], np.ndarray, Tuple[int, int], np.ndarray, float) -> np.ndarray
    """Boxes (N, 5) float32 [cls, x1, y1, x2, y2] of the targets that frame_labels leaves out but a
    reader would still see as numerals: at least UNLABELLED_MIN_VISIBLE of the ink inside the frame
    and at least UNLABELLED_CONTRAST_SHARE of ``min_contrast`` dark, yet cut by the frame edge or fainter than
    ``min_contrast``. The box bounds the ink inside the frame.

    Neither a target to find nor a false positive to count: the data set lists them (ignore/)
    so that evaluate drops detections on them, as PASCAL VOC does with its "difficult" objects."""
    return frame_targets(placed, hom, out_hw, image, min_contrast)[2]


def frame_boxes(placed, hom, out_hw, image=None, min_contrast=MIN_CONTRAST):
    # type: (List[Placed], np.ndarray, Tuple[int, int], Optional[np.ndarray], float) -> np.ndarray
    """The boxes of ``frame_labels``."""
    return frame_labels(placed, hom, out_hw, image, min_contrast)[0]


class PageWriter:
    """Writes characters and pen marks onto a flat page, keeping them apart and on the paper.

    ``hom`` maps page -> frame; ``visible`` tells whether a page point lands in the frame. The
    demo clip passes hom=None and a ``region`` instead (page rectangle to write into).
    """

    def __init__(self, rng, page, split, pen, paper_rect, hom=None, out_hw=None, region=None,
                 grid_origin=(0.0, 0.0)):
        # type: (np.random.Generator, np.ndarray, str, scene.Pen, Tuple[float, float, float, float], Optional[np.ndarray], Optional[Tuple[int, int]], Optional[Tuple[float, float, float, float]], Tuple[float, float]) -> None
        self.rng = rng
        self.page = page
        self.split = split
        self.pen = pen
        self.paper_rect = paper_rect
        self.hom = hom
        self.out_hw = out_hw
        self.region = region or paper_rect
        self.grid_origin = grid_origin  # a ruling crossing where line / grid layouts start
        self.placed = []  # type: List[Placed]
        self._rects = np.zeros((0, 4), np.float64)  # occupied (x0, y0, x1, y1), page pixels

    # -- geometry -------------------------------------------------------------------------
    def visible(self, px, py, margin=0.0):
        # type: (float, float, float) -> bool
        """Page point inside the paper, the writing region and (with a view) the frame."""
        x0, y0, x1, y1 = self.paper_rect
        rx0, ry0, rx1, ry1 = self.region
        if not (max(x0, rx0) <= px < min(x1, rx1) and max(y0, ry0) <= py < min(y1, ry1)):
            return False
        if self.hom is None or self.out_hw is None:
            return True
        h, w = self.out_hw
        u, v = scene.project(self.hom, np.array([[px, py]]))[0]
        return -margin <= u < w + margin and -margin <= v < h + margin

    def sample_point(self, margin=0.0, tries=50):
        # type: (float, int) -> Optional[Tuple[float, float]]
        """A random page point that is visible (frame margin in frame pixels, negative = inset)."""
        x0, y0, x1, y1 = self.region
        px0, py0, px1, py1 = self.paper_rect
        x0, y0, x1, y1 = max(x0, px0), max(y0, py0), min(x1, px1), min(y1, py1)
        for _ in range(tries):
            px, py = self.rng.uniform(x0, x1), self.rng.uniform(y0, y1)
            if self.visible(px, py, margin):
                return px, py
        return None

    def page_px(self, frame_px, px, py):
        # type: (float, float, float) -> float
        """Page pixels that span ``frame_px`` frame pixels around page point (px, py)."""
        if self.hom is None:
            return frame_px
        return frame_px / max(scene.local_scale(self.hom, px, py), 0.05)

    def free(self, rect, pad):
        # type: (Tuple[float, float, float, float], float) -> bool
        x0, y0, x1, y1 = rect
        px0, py0, px1, py1 = self.paper_rect
        if x0 < px0 or y0 < py0 or x1 > px1 or y1 > py1:
            return False
        r = self._rects
        if len(r) == 0:
            return True
        hit = (r[:, 0] < x1 + pad) & (r[:, 2] > x0 - pad) & (r[:, 1] < y1 + pad) & (r[:, 3] > y0 - pad)
        return not bool(hit.any())

    def occupy(self, rect):
        # type: (Tuple[float, float, float, float]) -> None
        self._rects = np.vstack([self._rects, np.asarray(rect, np.float64)[None]])

    # -- writing ----------------------------------------------------------------------------
    def render(self, char, em_px, pen=None):
        # type: (str, float, Optional[scene.Pen]) -> np.ndarray
        pen = pen or self.pen
        mask = render_ink(char, self.rng, max(int(round(em_px)), 6), self.split)
        return scene.widen_mask(mask, pen, em_px)

    def write(self, char, cx, cy, em_px, pen=None, pad=None, mask=None):
        # type: (str, float, float, float, Optional[scene.Pen], Optional[float], Optional[np.ndarray]) -> Optional[Placed]
        """Write ``char`` centred at page (cx, cy), em box ``em_px`` page pixels tall.

        pad: free space kept around other writing (page pixels); None writes regardless.
        Returns the placement, or None when it would overlap or leave the paper.
        """
        pen = pen or self.pen
        if mask is None:
            # Rendering costs more than this check: skip spots that are taken even by a small
            # version of the character.
            r = 0.3 * em_px
            if pad is not None and not self.free((cx - r, cy - r, cx + r, cy + r), pad):
                return None
            mask = self.render(char, em_px, pen)
        mh, mw = mask.shape
        x, y = int(round(cx - mw / 2.0)), int(round(cy - mh / 2.0))
        rect = (x, y, x + mw, y + mh)
        if pad is not None and not self.free(rect, pad):
            return None
        scene.apply_ink(self.page, mask, x, y, pen, self.rng)
        self.occupy(rect)
        cls = TARGETS.index(char) if char in TARGETS else -1
        item = Placed(char, cls, x, y, mask)
        self.placed.append(item)
        return item

    def write_anywhere(self, char, em_frame_px, pad_frac=0.15, tries=12, pen=None):
        # type: (str, float, float, int, Optional[scene.Pen]) -> Optional[Placed]
        """Write at a random visible spot that keeps clear of earlier writing."""
        mask = None
        for _ in range(tries):
            point = self.sample_point(margin=-0.02 * em_frame_px)
            if point is None:
                return None
            em = self.page_px(em_frame_px, *point)
            if mask is None:
                mask = self.render(char, em, pen)
            item = self.write(char, point[0], point[1], em, pen=pen, pad=pad_frac * em, mask=mask)
            if item is not None:
                return item
        return None

    def stroke(self, points, width, pen=None, closed=False):
        # type: (np.ndarray, float, Optional[scene.Pen], bool) -> None
        """Draw a free-hand pen line through page points (N, 2); not a character, never labelled."""
        pen = pen or self.pen
        pts = np.asarray(points, np.float64)
        width = max(1, int(round(width)))
        lo = np.floor(pts.min(axis=0)).astype(int) - width - 2
        hi = np.ceil(pts.max(axis=0)).astype(int) + width + 3
        canvas = np.zeros((int(hi[1] - lo[1]), int(hi[0] - lo[0])), np.uint8)
        local = np.round((pts - lo) * 16).astype(np.int32)
        cv2.polylines(canvas, [local], closed, 255, width, cv2.LINE_AA, shift=4)
        alpha = canvas.astype(np.float32) * np.float32(1.0 / 255.0)
        scene.apply_ink(self.page, alpha, int(lo[0]), int(lo[1]), pen, self.rng)


# -- pen marks that are not characters -------------------------------------------------------
def _wobbly(rng, pts, amount, n=24):
    # type: (np.random.Generator, np.ndarray, float, int) -> np.ndarray
    """Resample a polyline to n points and add a smooth hand tremor of ``amount`` pixels."""
    pts = np.asarray(pts, np.float64)
    seg = np.r_[0, np.cumsum(np.hypot(*np.diff(pts, axis=0).T))]
    t = np.linspace(0, seg[-1], n)
    out = np.column_stack([np.interp(t, seg, pts[:, 0]), np.interp(t, seg, pts[:, 1])])
    drift = np.cumsum(rng.normal(0, amount / 3.0, (n, 2)), axis=0)
    drift -= np.linspace(0, 1, n)[:, None] * drift[-1]
    return out + cv2.GaussianBlur(drift, (1, 5), 0)


def draw_marks(writer, rng, count, size_px):
    # type: (PageWriter, np.random.Generator, int, float) -> None
    """Doodles teachers and students leave: circles, ticks, crosses, arrows, scribbles, waves.

    Straight short dashes are left out: a lone dash is written exactly like 一.
    """
    for _ in range(count):
        kind = rng.choice(("circle", "tick", "arrow", "scribble", "wave", "star", "box"))
        point = writer.sample_point()
        if point is None:
            return
        cx, cy = point
        s = writer.page_px(size_px * rng.uniform(0.6, 1.6), cx, cy)
        rect = (cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2)
        if not writer.free(rect, 0.1 * s):
            continue
        width = max(1.0, s * rng.uniform(0.03, 0.07))
        if kind == "circle":
            t = np.linspace(0, 2 * np.pi * rng.uniform(0.9, 1.1), 40) + rng.uniform(0, 2 * np.pi)
            pts = np.column_stack([cx + s / 2 * np.cos(t), cy + s / 2 * rng.uniform(0.6, 1.0) * np.sin(t)])
        elif kind == "tick":
            pts = np.array([[cx - s / 2, cy], [cx - s / 6, cy + s / 2.5], [cx + s / 2, cy - s / 2]])
        elif kind == "arrow":
            a = rng.uniform(0, 2 * np.pi)
            d = np.array([np.cos(a), np.sin(a)]) * s / 2
            tip = np.array([cx, cy]) + d
            back = np.array([-d[1], d[0]]) * 0.35
            writer.stroke(_wobbly(rng, np.array([np.array([cx, cy]) - d, tip]), width), width)
            pts = np.array([tip - d * 0.35 + back, tip, tip - d * 0.35 - back])
        elif kind == "scribble":
            pts = np.cumsum(rng.normal(0, s / 4, (8, 2)), axis=0)
            pts = pts - pts.mean(axis=0) + (cx, cy)
        elif kind == "wave":
            t = np.linspace(-0.5, 0.5, 30)
            pts = np.column_stack([cx + t * s * 1.5, cy + np.sin(t * rng.uniform(8, 20)) * s * 0.12])
        elif kind == "star":
            ang = np.linspace(0, 4 * np.pi, 6) + rng.uniform(0, np.pi)
            pts = np.column_stack([cx + s / 2 * np.cos(ang), cy + s / 2 * np.sin(ang)])
        else:
            pts = np.array([[cx - s / 2, cy - s / 3], [cx + s / 2, cy - s / 3], [cx + s / 2, cy + s / 3],
                            [cx - s / 2, cy + s / 3], [cx - s / 2, cy - s / 3]])
        writer.stroke(_wobbly(rng, pts, width * 0.8, n=max(12, len(pts) * 6)), width)
        writer.occupy(rect)


def circle_item(writer, rng, item):
    # type: (PageWriter, np.random.Generator, Placed) -> None
    """A loose ring around a written character (a teacher marking an answer)."""
    mh, mw = item.mask.shape
    cx, cy = item.x + mw / 2.0, item.y + mh / 2.0
    rx, ry = mw * rng.uniform(0.7, 0.95), mh * rng.uniform(0.7, 0.95)
    rx = ry = max(rx, ry) if rng.random() < 0.5 else rx
    t = np.linspace(0, 2 * np.pi * rng.uniform(0.95, 1.12), 48) + rng.uniform(0, 2 * np.pi)
    pts = np.column_stack([cx + rx * np.cos(t), cy + ry * np.sin(t)])
    width = max(1.0, max(mh, mw) * rng.uniform(0.03, 0.06))
    writer.stroke(_wobbly(rng, pts, width, n=48), width)


def underline(writer, rng, items, em):
    # type: (PageWriter, np.random.Generator, List[Placed], float) -> None
    """One free-hand line under a run of at least three characters (never a lone dash)."""
    if len(items) < 3:
        return
    x0 = min(i.x for i in items)
    x1 = max(i.x + i.mask.shape[1] for i in items)
    y = max(i.y + i.mask.shape[0] for i in items) + em * rng.uniform(0.08, 0.2)
    width = max(1.0, em * rng.uniform(0.03, 0.06))
    writer.stroke(_wobbly(rng, np.array([[x0, y], [x1, y + rng.normal(0, em * 0.05)]]), width), width)


# -- layouts ------------------------------------------------------------------------------
def _pick_chars(rng, split, n, p_target, in_context=False, mix=NegativeMix()):
    # type: (np.random.Generator, str, int, float, bool, NegativeMix) -> List[str]
    """n characters: targets with probability p_target, else negatives."""
    negatives = negatives_for(split, in_context)
    # The test split keeps the uniform draw so that the held-out set stays the same images.
    confusers = tuple(c for c in negatives if c in mix.confusers) if split == "train" else ()
    out = []
    for _ in range(n):
        if rng.random() < p_target or not negatives:
            out.append(TARGETS[int(rng.integers(len(TARGETS)))])
        elif confusers and rng.random() < mix.confuser_share:
            out.append(confusers[int(rng.integers(len(confusers)))])
        else:
            out.append(negatives[int(rng.integers(len(negatives)))])
    return out


def _log_uniform(rng, lo, hi):
    # type: (np.random.Generator, float, float) -> float
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _layout_single(writer, rng, frame_h):
    # type: (PageWriter, np.random.Generator, int) -> None
    em = _log_uniform(rng, 0.10, MAX_EM_FRAC) * frame_h
    item = None
    for _ in range(10):
        point = writer.sample_point(margin=-0.3 * em)
        if point is None:
            break
        item = writer.write(_pick_chars(rng, writer.split, 1, 1.0)[0], point[0], point[1],
                            writer.page_px(em, *point), pad=0.0)
        if item is not None:
            break
    if item is not None and rng.random() < 0.15:
        circle_item(writer, rng, item)


def _layout_scattered(writer, rng, frame_h, p_target=0.6, max_frac=0.25, mix=NegativeMix()):
    # type: (PageWriter, np.random.Generator, int, float, float, NegativeMix) -> None
    base = _log_uniform(rng, MIN_EM_FRAC, max_frac) * frame_h
    n = int(rng.integers(2, 15))
    for char in _pick_chars(rng, writer.split, n, p_target, mix=mix):
        item = writer.write_anywhere(char, base * rng.uniform(0.8, 1.25))
        if item is not None and item.cls >= 0 and rng.random() < 0.05:
            circle_item(writer, rng, item)


def _layout_lines(writer, rng, frame_h, pitch, p_target=0.7, mix=NegativeMix()):
    # type: (PageWriter, np.random.Generator, int, float, float, NegativeMix) -> None
    """Rows of characters sitting between ruled lines, like notes or dates written out."""
    origin = writer.grid_origin
    em = pitch * rng.uniform(0.6, 0.95)
    step = em * rng.uniform(0.95, 1.4)
    n_rows = int(rng.integers(1, int(np.clip(frame_h / pitch, 2, 8)) + 1))
    row = int(rng.integers(1, 3))
    budget = MAX_CHARS
    x_start = origin[0] + rng.uniform(0, 4) * pitch
    for _ in range(n_rows):
        y_line = origin[1] + row * pitch
        row += 1 + int(rng.random() < 0.25)
        cy = y_line - pitch / 2 + rng.normal(0, pitch * 0.04)
        n = int(rng.integers(2, 11))
        x = x_start + rng.normal(0, em * 0.3)
        written = []
        for char in _pick_chars(rng, writer.split, min(n, budget), p_target, in_context=True, mix=mix):
            if rng.random() < 0.08:  # a gap between words
                x += step
                continue
            e = em * rng.uniform(0.85, 1.12)
            if writer.visible(x, cy, margin=e):
                item = writer.write(char, x, cy + rng.normal(0, em * 0.05), e, pad=-0.1 * e)
                if item is not None:
                    written.append(item)
                    budget -= 1
            x += step * rng.uniform(0.9, 1.1)
        if rng.random() < 0.12:
            underline(writer, rng, written, em)
        if budget <= 0:
            break


def _layout_worksheet(writer, rng, frame_h, pitch, p_target=0.75, small=False, mix=NegativeMix()):
    # type: (PageWriter, np.random.Generator, int, float, float, bool, NegativeMix) -> None
    """A practice sheet: characters written into grid cells, often one numeral per row, up to
    the cell size so strokes touch or cross the printed lines; or on fine graph paper with each
    character spanning several cells (not in a small scene)."""
    ox, oy = writer.grid_origin
    rows, cols = int(rng.integers(1, 8)), int(rng.integers(2, 10))
    if rng.random() < 0.3 and not small:
        pitch *= rng.uniform(1.5, 3.5)
    fill = rng.uniform(0.55, 1.05)
    budget = MAX_CHARS
    r0, c0 = int(rng.integers(0, 3)), int(rng.integers(0, 3))
    for r in range(r0, r0 + rows):
        repeat = rng.random() < 0.5
        chars = _pick_chars(rng, writer.split, cols, p_target, mix=mix)
        if repeat:
            chars = [chars[0]] * cols
        for c, char in zip(range(c0, c0 + cols), chars):
            if budget <= 0 or rng.random() < 0.1:
                continue
            cx = ox + (c + 0.5) * pitch + rng.normal(0, pitch * 0.06)
            cy = oy + (r + 0.5) * pitch + rng.normal(0, pitch * 0.06)
            if writer.visible(cx, cy, margin=pitch * fill * 0.3):
                if writer.write(char, cx, cy, pitch * fill * rng.uniform(0.9, 1.1), pad=0.0) is not None:
                    budget -= 1


def _paper_rect(rng, page_hw):
    # type: (np.random.Generator, Tuple[int, int]) -> Tuple[float, float, float, float]
    """The sheet within the drawn page: all of it, or now and then a sheet whose edge is in view."""
    ph, pw = page_hw
    if rng.random() < 0.72:
        return (0.0, 0.0, float(pw), float(ph))
    x0, y0 = 0.0, 0.0
    x1, y1 = float(pw), float(ph)
    for side in rng.permutation(4)[:int(rng.integers(1, 3))]:
        cut = rng.uniform(0.1, 0.4)
        if side == 0:
            x0 = cut * pw
        elif side == 1:
            x1 = (1 - cut) * pw
        elif side == 2:
            y0 = cut * ph
        else:
            y1 = (1 - cut) * ph
    return (x0, y0, x1, y1)


def draw_scene(rng, split, size=(480, 640), layout=None, small_share=0.0, negatives=NegativeMix()):
    # type: (np.random.Generator, str, Tuple[int, int], Optional[str], float, NegativeMix) -> Scene
    """One scene before labelling: the frame, everything written on the page, and the page's
    homography; make_sample's arguments, and the same random numbers."""
    h, w = size
    hom, page_hw = scene.random_view(rng, (h, w))
    weights = TRAIN_LAYOUT_WEIGHTS if split == "train" else LAYOUT_WEIGHTS
    drawn = LAYOUTS[int(rng.choice(len(LAYOUTS), p=weights))]
    if layout is not None and layout not in LAYOUTS:
        raise ValueError("unknown layout %r; choose from %s" % (layout, ", ".join(LAYOUTS)))
    target_free = negatives.page_share > 0 and rng.random() < negatives.page_share
    if target_free:
        drawn = NEGATIVE_PAGE_LAYOUTS[int(rng.integers(len(NEGATIVE_PAGE_LAYOUTS)))]
    if layout is None:
        layout = drawn
    small = (small_share > 0 and layout in ("scattered", "negatives", "lines", "worksheet")
             and rng.random() < small_share)
    # scattered characters vary by up to 1.25x around their base size
    scatter_max = SMALL_MAX_FRAC / 1.25 if small else 0.25
    if layout == "worksheet":
        kind = "grid" if rng.random() < 0.75 else str(rng.choice(("lined", "notebook", "white")))
        pitch = _log_uniform(rng, 0.04, SMALL_MAX_FRAC if small else 0.16) * h
    elif layout == "lines":
        kind = str(rng.choice(("lined", "notebook", "white", "off_white", "whiteboard", "coloured"),
                              p=(0.3, 0.3, 0.15, 0.1, 0.1, 0.05)))
        pitch = _log_uniform(rng, MIN_EM_FRAC * 1.2, SMALL_MAX_FRAC if small else 0.16) * h
    else:
        kind = scene.PAPER_KINDS[int(rng.choice(len(scene.PAPER_KINDS), p=scene.PAPER_WEIGHTS))]
        pitch = _log_uniform(rng, 0.04, 0.12) * h
    # Rulings are drawn at page scale; convert frame pixels to page pixels at the frame centre.
    centre = np.linalg.solve(hom, np.array([w / 2.0, h / 2.0, 1.0]))
    centre = centre[:2] / centre[2]
    pitch /= max(scene.local_scale(hom, centre[0], centre[1]), 0.05)
    origin = (rng.uniform(0, pitch), rng.uniform(0, pitch))
    page = scene.make_paper(rng, page_hw, kind, pitch, origin)
    paper_rect = _paper_rect(rng, page_hw)
    pen = scene.choose_pen(rng, kind)
    writer = PageWriter(rng, page, split, pen, paper_rect, hom, (h, w))
    # Lines and worksheet grids start at a ruling crossing near the visible page's corner.
    vis = writer.sample_point(margin=-0.1 * h) or (centre[0], centre[1])
    writer.grid_origin = (origin[0] + math.floor((vis[0] - origin[0]) / pitch - rng.uniform(1, 4)) * pitch,
                            origin[1] + math.floor((vis[1] - origin[1]) / pitch - rng.uniform(1, 3)) * pitch)
    no_targets = {"p_target": 0.0} if target_free else {}
    if layout == "single":
        if not target_free:
            _layout_single(writer, rng, h)
    elif layout == "scattered":
        _layout_scattered(writer, rng, h, max_frac=scatter_max, mix=negatives, **no_targets)
    elif layout == "lines":
        _layout_lines(writer, rng, h, pitch, mix=negatives, **no_targets)
    elif layout == "worksheet":
        _layout_worksheet(writer, rng, h, pitch, small=small, mix=negatives, **no_targets)
    elif layout == "negatives":
        _layout_scattered(writer, rng, h, p_target=0.0, max_frac=scatter_max, mix=negatives)
    if layout == "empty" or rng.random() < 0.15:
        draw_marks(writer, rng, int(rng.integers(1, 5)), _log_uniform(rng, 0.05, 0.3) * h)
    frame = cv2.warpPerspective(page, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if paper_rect != (0.0, 0.0, float(page_hw[1]), float(page_hw[0])):
        mask = scene.paper_mask(page_hw, paper_rect, hom, (h, w))
        frame = scene.composite_paper(frame, mask, rng)
    image = scene.capture(rng, frame, kind)
    return Scene(image, writer.placed, hom)


def make_sample(rng, split, size=(480, 640), layout=None, small_share=0.0, negatives=NegativeMix()):
    # type: (np.random.Generator, str, Tuple[int, int], Optional[str], float, NegativeMix) -> Tuple[np.ndarray, np.ndarray, List[np.ndarray]]
    """One scene: (BGR uint8 (h, w, 3), boxes (N, 5) float32 [cls, x1, y1, x2, y2] pixels,
    the ink hull (K, 2) float32 of each box; frame_labels).

    split picks the ink sources ("train" or the held-out "test"); layout (one of LAYOUTS)
    pins the kind of scene, which is otherwise drawn from LAYOUT_WEIGHTS.
    small_share: the share of scattered, negative, lines and worksheet scenes whose characters
    stay small (about SMALL_MAX_FRAC of the frame height at most), where the model misses most;
    0 draws no extra random number, so a seed gives the same scenes as before.
    negatives: what the page writes besides numerals (NegativeMix); its page_share turns that
    share of scenes into target-free pages of a scattered, lines or worksheet layout (a pinned
    layout stays, without its numerals).
    """
    drawn = draw_scene(rng, split, size, layout, small_share, negatives)
    boxes, hulls = frame_labels(drawn.placed, drawn.hom, drawn.image.shape[:2], drawn.image)
    return drawn.image, boxes, hulls
