"""Overlay: boxes, hanja tags and the status line checked pixel by pixel on real frames."""

import json
import math
import os
import shutil

import cv2
import numpy as np
import pytest

from hanja_live import CLASS_NAMES
from hanja_live.detections import Detections
from hanja_live.errors import HanjaLiveError
from hanja_live.fps import FpsMeter
from hanja_live.glyphs import ATLAS_DIR, GlyphAtlas
from hanja_live.overlay import UNKNOWN_RGB, Annotator, palette

H = 24  # label height used throughout
T = 2  # outline thickness


def paper_frame(width=1280, height=720, seed=0):
    """A photo-like page: uneven light paper, sensor noise and a few dark pen strokes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    shade = 215 + 25 * np.sin(xx / width * math.pi) * np.cos(yy / height * 1.3)
    img = np.clip(shade[:, :, None] + rng.normal(0, 6, (height, width, 3)), 0, 255).astype(np.uint8)
    for _ in range(12):
        x, y = int(rng.integers(0, width - 60)), int(rng.integers(0, height - 60))
        cv2.line(img, (x, y), (x + int(rng.integers(10, 60)), y + int(rng.integers(-5, 40))),
                 (40, 35, 30), 3, cv2.LINE_AA)
    return img


def dets(boxes, classes, confs=None):
    confs = [0.9] * len(boxes) if confs is None else confs
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), confs, classes)


def drawn_mask(shape, boxes, annotator):
    """Where annotate may draw for boxes that have room above: outline bands + tag rectangles."""
    mask = np.zeros(shape[:2], bool)
    for x1, y1, x2, y2, c in boxes:
        mask[y1:y2, x1:x2] = True
        mask[y1 + T:y2 - T, x1 + T:x2 - T] = False
        mask[y1 - H:y1, x1:x1 + annotator.tag_width(c)] = True
    return mask


def ink_alpha(patch, bg, fg):
    """How far each pixel of a tag patch went from the tag colour towards the text colour."""
    bg, fg = np.array(bg, np.float32), np.array(fg, np.float32)
    along = (patch.astype(np.float32) - bg) @ (fg - bg) / float((fg - bg) @ (fg - bg))
    return np.clip(along, 0, 1)


# (x1, y1, x2, y2, class) on a 1280x720 page; every box has room for its tag above it
PAGE_BOXES = [(100, 120, 300, 330, 0), (420, 90, 560, 300, 2), (700, 400, 900, 650, 3),
              (1000, 200, 1200, 420, 7), (250, 450, 420, 620, 9), (560, 420, 640, 520, 5)]


@pytest.fixture(scope="module")
def annotator():
    return Annotator(CLASS_NAMES, label_height=H, thickness=T)


@pytest.fixture(scope="module")
def page(annotator):
    original = paper_frame()
    boxes = [b[:4] for b in PAGE_BOXES]
    classes = [b[4] for b in PAGE_BOXES]
    image = original.copy()
    out = annotator.annotate(image, dets(boxes, classes, [0.87, 0.5, 1.0, 0.05, 0.33, 0.999]))
    assert out is image
    return original, image


def test_outline_in_class_colour_and_rest_untouched(annotator, page):
    original, image = page
    colors = palette(10)
    for x1, y1, x2, y2, c in PAGE_BOXES:
        color = np.array(colors[c], np.uint8)
        for band in (image[y1:y1 + T, x1:x2], image[y2 - T:y2, x1:x2],
                     image[y1:y2, x1:x1 + T], image[y1:y2, x2 - T:x2]):
            assert (band == color).all(), "class %d outline not in its colour" % c
        inside = (slice(y1 + T, y2 - T), slice(x1 + T, x2 - T))
        assert (image[inside] == original[inside]).all(), "box interior was drawn on"
    mask = drawn_mask(image.shape, PAGE_BOXES, annotator)
    assert (image[~mask] == original[~mask]).all()
    assert (image[mask] != original[mask]).any(axis=1).mean() > 0.95


def test_tag_holds_the_right_glyph(annotator, page):
    """The ink in each tag correlates best with the atlas glyph of that box's class."""
    _, image = page
    atlas = GlyphAtlas(H)
    templates = [atlas.glyph(name).astype(np.float32) / 255 for name in CLASS_NAMES]
    colors = palette(10)
    for x1, y1, _, _, c in PAGE_BOXES:
        tag = image[y1 - H:y1, x1:x1 + annotator.tag_width(c)]
        assert (tag[:, 0] == colors[c]).all() and (tag[:, -1] == colors[c]).all()
        ink_rgb = [v for v in ((0, 0, 0), (255, 255, 255)) if (tag == v).all(axis=2).any()]
        assert len(ink_rgb) == 1, "tag text must be pure black or pure white"
        alpha = ink_alpha(tag, colors[c], ink_rgb[0])
        scores = [cv2.matchTemplate(alpha, t, cv2.TM_CCOEFF_NORMED).max() for t in templates]
        assert int(np.argmax(scores)) == c, "class %d tag looks like %s (scores %s)" % (
            c, CLASS_NAMES[int(np.argmax(scores))], np.round(scores, 2))
        assert scores[c] > 0.97
        assert sorted(scores)[-2] < scores[c] - 0.1


def test_confidence_digits_drawn(annotator):
    """Two confidences differ only inside the tag's number, and 0.87 shows the glyph 8."""
    a, b = paper_frame(320, 240), paper_frame(320, 240)
    annotator.annotate(a, dets([(20, 60, 200, 200)], [4], [0.87]))
    annotator.annotate(b, dets([(20, 60, 200, 200)], [4], [0.12]))
    diff_cols = np.nonzero((a != b).any(axis=(0, 2)))[0]
    tag_w = annotator.tag_width(4)
    assert diff_cols.min() > 20 + H and diff_cols.max() < 20 + tag_w
    atlas = GlyphAtlas(H)
    alpha = ink_alpha(a[60 - H:60, 20:20 + tag_w], palette(10)[4], (255, 255, 255))
    score8 = cv2.matchTemplate(alpha, atlas.glyph("8").astype(np.float32) / 255,
                               cv2.TM_CCOEFF_NORMED).max()
    score3 = cv2.matchTemplate(alpha, atlas.glyph("3").astype(np.float32) / 255,
                               cv2.TM_CCOEFF_NORMED).max()
    assert score8 > 0.97 and score8 > score3


# frame 320x240, one box of class 1; expectation keys:
#   unchanged: image must stay as it was
#   tag: (x, y) of the tag's top-left pixel, which is the tag colour, as is the pixel H-1 below
#   colour: pixels (x, y) that must be the class colour; plain: pixels that must stay unchanged
EDGE_CASES = [
    ("no boxes", None, {"unchanged": True}),
    ("fully left", (-100, 50, -10, 100), {"unchanged": True}),
    ("fully right", (330, 50, 400, 100), {"unchanged": True}),
    ("fully above", (50, -80, 100, -5), {"unchanged": True}),
    ("fully below", (50, 250, 100, 300), {"unchanged": True}),
    ("ends at left edge", (-50, 50, 0, 100), {"unchanged": True}),
    ("zero width", (50, 50, 50, 100), {"unchanged": True}),
    ("zero height", (50, 80, 120, 80), {"unchanged": True}),
    ("inverted", (120, 100, 50, 50), {"unchanged": True}),
    ("nan corner", (float("nan"), 10, 50, 50), {"unchanged": True}),
    ("infinite corner", (0, 0, float("inf"), 50), {"unchanged": True}),
    ("room above", (100, 60, 200, 150), {"tag": (100, 36),
                                         "colour": [(100, 100), (199, 100), (150, 149)],
                                         "plain": [(150, 100), (99, 35)]}),
    ("touches top", (100, 0, 200, 100), {"tag": (100, 0), "colour": [(100, 50), (150, 99)],
                                         "plain": [(150, 50)]}),
    ("partly above", (100, -40, 200, 100), {"tag": (100, 0),
                                            "colour": [(100, 50), (199, 50), (150, 98)],
                                            "plain": [(150, 50)]}),
    ("partly left", (-30, 80, 60, 160), {"tag": (0, 56), "colour": [(20, 80), (59, 120)],
                                         "plain": [(20, 120)]}),
    ("partly right", (280, 100, 400, 200), {"tag": "right", "colour": [(280, 150), (300, 199)],
                                            "plain": [(300, 150)]}),
    ("partly below", (100, 200, 200, 300), {"tag": (100, 176), "colour": [(100, 220), (150, 200)],
                                            "plain": [(150, 220)]}),
    ("covers frame", (-1e9, -1e9, 1e9, 1e9), {"tag": (0, 0), "plain": [(160, 120), (0, 239)]}),
    ("one pixel", (10, 100, 11, 101), {"tag": (10, 76), "colour": [(10, 100)],
                                       "plain": [(11, 100), (10, 101), (9, 100)]}),
    ("grayscale image", "gray", {"raises": ValueError}),
    ("float image", "float", {"raises": ValueError}),
]


@pytest.mark.parametrize("name, box, expect", EDGE_CASES, ids=[c[0] for c in EDGE_CASES])
def test_edge_cases(annotator, name, box, expect):
    original = paper_frame(320, 240, seed=3)
    image = original.copy()
    if box in ("gray", "float"):
        bad = image[:, :, 0] if box == "gray" else image.astype(np.float32)
        with pytest.raises(expect["raises"], match="uint8 BGR image"):
            annotator.annotate(bad, dets([(10, 10, 50, 50)], [1]))
        return
    detections = Detections.empty() if box is None else dets([box], [1])
    annotator.annotate(image, detections)
    if expect.get("unchanged"):
        assert (image == original).all()
        return
    color = palette(10)[1]
    tag_w = annotator.tag_width(1)
    tx, ty = (320 - tag_w, 76) if expect["tag"] == "right" else expect["tag"]
    assert tuple(image[ty, tx]) == color and tuple(image[ty + H - 1, tx]) == color
    assert tuple(image[ty, min(tx + tag_w - 1, 319)]) == color
    if ty > 0:
        assert (image[ty - 1, tx:tx + tag_w] == original[ty - 1, tx:tx + tag_w]).all()
    for x, y in expect.get("colour", []):
        assert tuple(image[y, x]) == color, "(%d, %d) should be the box colour" % (x, y)
    for x, y in expect.get("plain", []):
        assert (image[y, x] == original[y, x]).all(), "(%d, %d) should be untouched" % (x, y)


def test_tiny_frame_and_unknown_class_do_not_fail(annotator):
    tiny = np.full((16, 16, 3), 255, np.uint8)
    annotator.annotate(tiny, dets([(2, 2, 10, 10)], [3]))
    assert tuple(tiny[0, 0]) == palette(10)[3]
    frame = paper_frame(200, 100)
    annotator.annotate(frame, dets([(20, 40, 120, 90)], [42]))  # class id outside the names
    assert (frame[40:90, 20] == UNKNOWN_RGB[::-1]).all()


@pytest.mark.parametrize("conf, same_as", [(1.5, 1.0), (-0.2, 0.0), (float("nan"), 0.0),
                                           (0.994, 0.99), (0.996, 1.0), (0.5, 0.5)])
def test_confidence_is_clipped_and_rounded(annotator, conf, same_as):
    a, b = paper_frame(200, 120), paper_frame(200, 120)
    annotator.annotate(a, dets([(10, 40, 150, 110)], [6], [conf]))
    annotator.annotate(b, dets([(10, 40, 150, 110)], [6], [same_as]))
    assert (a == b).all()
    if same_as != 0.5:
        c = paper_frame(200, 120)
        annotator.annotate(c, dets([(10, 40, 150, 110)], [6], [0.5]))
        assert (a != c).any()


@pytest.mark.parametrize("kwargs, error", [
    ({"names": CLASS_NAMES}, None),
    ({"names": ["cat", "dog"]}, None),
    ({"names": ["十一", "x"], "label_height": 40, "thickness": 5, "show_conf": False}, None),
    ({"names": CLASS_NAMES, "colors": [(0, 0, 0)] * 10}, None),
    ({"names": []}, "at least one class name"),
    ({"names": CLASS_NAMES, "label_height": 6}, "label_height must be at least 10"),
    ({"names": CLASS_NAMES, "thickness": 0}, "thickness must be at least 1"),
    ({"names": CLASS_NAMES, "colors": [(0, 0, 255)] * 9}, "one \\(B, G, R\\) triple"),
    ({"names": ["a"], "colors": [(0, 0, 256)]}, "one \\(B, G, R\\) triple"),
    ({"names": ["a"], "colors": [(0, 0)]}, "one \\(B, G, R\\) triple"),
])
def test_annotator_arguments(kwargs, error):
    if error is not None:
        with pytest.raises(ValueError, match=error):
            Annotator(**kwargs)
        return
    annotator = Annotator(**kwargs)
    image = np.full((200, 300, 3), 128, np.uint8)
    annotator.annotate(image, dets([(10, 60, 150, 190)], [0], [0.5]))
    height = kwargs.get("label_height", 24)
    tag = image[60 - height:60, 10:10 + annotator.tag_width(0)]
    assert tag.shape[1] > height // 2
    # some text is drawn: the tag holds more than its background colour
    assert len(np.unique(tag.reshape(-1, 3), axis=0)) > 2


def test_palette_is_distinct_and_reads_on_white():
    colors = np.array(palette(10), np.float32)
    assert len({tuple(c) for c in colors.tolist()}) == 10
    dists = np.linalg.norm(colors[:, None] - colors[None], axis=2) + np.eye(10) * 999
    assert dists.min() > 60
    lum = colors @ np.array([0.0722, 0.7152, 0.2126], np.float32) / 255  # BGR weights
    assert lum.max() < 0.6, "a colour too light to see on white paper"
    assert palette(12)[10] == palette(12)[0]


def test_status_line_top_left_only(annotator):
    original = paper_frame(640, 360)
    a, b = original.copy(), original.copy()
    annotator.draw_status(a, 29.84, 12.3)
    annotator.draw_status(b, 7.0, 12.3)
    changed = (a != original).any(axis=2)
    rows, cols = np.nonzero(changed)
    assert rows.max() < 2 * H and cols.max() < 320 and rows.min() == 0 and cols.min() == 0
    assert (a[0, 0] == (32, 32, 32)).all()
    assert ((a == 255).all(axis=2) & changed).sum() > 50, "no white text"
    assert (a != b).any(), "a different FPS must show differently"
    assert (a[:, 320:] == original[:, 320:]).all()
    c = original.copy()
    annotator.draw_status(c, None, None, extra="paused")
    assert (c[:, :40] != a[:, :40]).any()
    d, e = original.copy(), original.copy()
    annotator.draw_status(d, float("nan"), 3.0)
    annotator.draw_status(e, None, 3.0)
    assert (d == e).all()
    small = original[:10, :30].copy()
    annotator.draw_status(small, 123.4, 5.6, extra="x")  # clipped, not an error


@pytest.mark.parametrize("height", [10, 24, 47, 96, 200])
def test_atlas_glyphs_scaled_to_height(height):
    atlas = GlyphAtlas(height)
    assert atlas.has("".join(CLASS_NAMES) + "0123456789.%")
    assert not atlas.has("A") and not atlas.has("")
    for name in CLASS_NAMES:
        glyph = atlas.glyph(name)
        assert glyph.shape == (height, height) and glyph.dtype == np.uint8
        assert glyph.max() > 150 and glyph.min() == 0
    assert atlas.render("0.5").shape == (height, atlas.width("0.5"))


@pytest.mark.parametrize("char, bars", [("一", 1), ("二", 2), ("三", 3), ("十", 1)])
def test_atlas_cells_hold_the_named_glyph(char, bars):
    """Horizontal strokes crossed by a vertical line through the glyph, a little left of centre."""
    glyph = GlyphAtlas(96).glyph(char)
    column = glyph[:, 40] > 128
    runs = int(np.sum(column[1:] & ~column[:-1]) + column[0])
    assert runs == bars


@pytest.mark.parametrize("damage, needle", [
    ("no png", "atlas.png is missing or unreadable"),
    ("no json", "cannot read the label atlas index"),
    ("bad json", "is damaged"),
    ("short png", "does not match atlas.json"),
])
def test_atlas_damage_is_one_clear_error(tmp_path, damage, needle):
    shutil.copytree(ATLAS_DIR, str(tmp_path / "labels"))
    folder = str(tmp_path / "labels")
    if damage == "no png":
        os.remove(os.path.join(folder, "atlas.png"))
    elif damage == "no json":
        os.remove(os.path.join(folder, "atlas.json"))
    elif damage == "bad json":
        with open(os.path.join(folder, "atlas.json"), "w") as f:
            json.dump({"em_px": 96}, f)
    else:
        png = cv2.imread(os.path.join(folder, "atlas.png"), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(os.path.join(folder, "atlas.png"), png[:, :500])
    with pytest.raises(HanjaLiveError, match=needle) as info:
        GlyphAtlas(24, atlas_dir=folder)
    assert folder in str(info.value) and "make_label_atlas" in str(info.value)
    assert "\n" not in str(info.value)


def test_atlas_is_reproducible_from_bundled_font():
    pytest.importorskip("fontTools", reason="fontTools is needed to render the font")
    from hanja_live.train import make_label_atlas as mla

    atlas, index = mla.render_atlas(os.path.join(ATLAS_DIR, mla.SUBSET_NAME))
    bundled = cv2.imread(os.path.join(ATLAS_DIR, "atlas.png"), cv2.IMREAD_GRAYSCALE)
    with open(os.path.join(ATLAS_DIR, "atlas.json"), encoding="utf-8") as f:
        assert json.load(f)["cells"] == index["cells"]
    assert atlas.shape == bundled.shape
    assert np.abs(atlas.astype(int) - bundled).max() <= 1


def ticks(*segments):
    """Tick times: each segment (rate_hz, seconds) continues from where the last one ended."""
    times, now = [0.0], 0.0
    for rate, seconds in segments:
        for _ in range(int(round(rate * seconds))):
            now += 1.0 / rate
            times.append(now)
    return times


@pytest.mark.parametrize("times, tau, low, high", [
    ([0.0], 1.0, 0.0, 0.0),
    ([0.0, 0.1], 1.0, 10.0, 10.0),
    (ticks((30, 3)), 1.0, 29.99, 30.01),
    (ticks((10, 2), (30, 5)), 1.0, 29.7, 30.0),
    (ticks((10, 2), (30, 1)), 1.0, 20.0, 27.0),
    (ticks((30, 3), (1, 1)), 1.0, 10.0, 13.0),
    (ticks((30, 3), (1, 1)), 0.1, 1.0, 1.01),
    ([0.0, 0.1, 0.1, 0.2], 1.0, 10.0, 10.0),
    ([0.0, 0.5, 0.3, 0.6], 1.0, 2.7, 2.8),  # a step back is skipped, not a negative rate
    ([0.0], 0.0, ValueError, None),
    ([0.0], -1.0, ValueError, None),
])
def test_fps_meter(times, tau, low, high):
    if low is ValueError:
        with pytest.raises(ValueError, match="time_constant_s must be > 0"):
            FpsMeter(tau)
        return
    meter = FpsMeter(tau)
    for t in times:
        value = meter.tick(t)
    assert value == meter.value
    assert low - 1e-9 <= meter.value <= high + 1e-9


def test_fps_meter_default_clock():
    meter = FpsMeter()
    meter.tick()
    assert meter.tick() >= 0.0
    meter.reset()
    assert meter.value == 0.0


@pytest.mark.parametrize("extra, same_as", [
    ("camera lost \u2014 reconnecting", "camera lost - reconnecting"),
    ("no frame \u2013 \u201cusb\u201d \u2026", 'no frame - "usb" ...'),
    ("\u76f8\u673a lost", "?? lost"),
    ("plain ascii", "plain ascii"),
])
def test_status_extra_is_drawn_in_ascii(annotator, extra, same_as):
    original = paper_frame(640, 360)
    a, b = original.copy(), original.copy()
    annotator.draw_status(a, None, None, extra=extra)
    annotator.draw_status(b, None, None, extra=same_as)
    assert (a == b).all()
    assert (a != original).any()


@pytest.mark.parametrize("width, wraps", [
    (1280, False),  # fits after the numbers, one line
    (320, True),    # a small camera frame: own line under the numbers, shrunk to fit
    (160, True),
])
def test_status_extra_is_never_cut_off(annotator, width, wraps):
    text = "camera lost - reconnecting (try 3)"
    frame = paper_frame(width, 240)
    annotator.draw_status(frame, None, None, extra=text)
    strip = (frame == (32, 32, 32)).all(axis=2)
    rows = np.nonzero(strip.any(axis=1))[0]
    white = (frame >= 200).all(axis=2) & ~(paper_frame(width, 240) >= 200).all(axis=2)
    assert white.any()
    plain = paper_frame(width, 240)
    annotator.draw_status(plain, None, None)
    one_line_rows = np.nonzero((plain == (32, 32, 32)).all(axis=2).any(axis=1))[0].max()
    assert (rows.max() > one_line_rows) == wraps
    # the text's ink ends inside the frame with a margin: nothing runs off the right edge
    cols = np.nonzero((frame[:rows.max() + 1] == 255).all(axis=2).any(axis=0))[0]
    assert cols.max() < width - 1
