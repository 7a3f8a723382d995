"""The synthetic ink renderer: bundled stroke/font sources, splits, masks and determinism."""

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("fontTools", reason="fontTools reads the bundled font subsets (pip install fonttools)")

from hanja_live.train import font_outlines, handwriting, strokes  # noqa: E402
from hanja_live.train.charsets import ALL_CHARS, NEGATIVE_GROUPS, NEGATIVES, TARGETS  # noqa: E402
from hanja_live.train.handwriting import SPLITS, render_ink, sources_for  # noqa: E402

ASSETS = os.path.join(os.path.dirname(handwriting.__file__), "assets")
LICENCE_NAMES = ("COPYING", "copyright", "ARPHICPL.TXT", "GPL-2", "LICENSE", "LICENCE")


def _ink_extent(mask, level=0.25):
    rows = np.flatnonzero(mask.max(axis=1) > level)
    cols = np.flatnonzero(mask.max(axis=0) > level)
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


# --- sources and splits -----------------------------------------------------------------------


def test_charsets_have_ten_targets_and_no_overlap_with_negatives():
    assert TARGETS == ("一", "二", "三", "四", "五", "六", "七", "八", "九", "十")
    assert not set(TARGETS) & set(NEGATIVES)
    assert len(set(ALL_CHARS)) == len(ALL_CHARS)
    assert set(NEGATIVE_GROUPS) >= {"cjk_lookalike", "hangul", "latin", "digits", "signs"}


@pytest.mark.parametrize("char", TARGETS)
def test_target_sources_are_disjoint_between_splits(char):
    train, test = set(sources_for(char, "train")), set(sources_for(char, "test"))
    assert train and test
    assert not train & test
    # Both splits write some samples from stroke skeletons, not only from fonts.
    assert any(not s.startswith("font:") for s in train)
    assert any(not s.startswith("font:") for s in test)


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("char", TARGETS)
def test_every_target_renders_from_each_of_its_sources(char, split):
    rng = np.random.default_rng(7)
    for source in sources_for(char, split):
        mask = render_ink(char, rng, 48, split, source=source)
        assert mask.max() > 0.25, (char, split, source)


@pytest.mark.parametrize("char", NEGATIVES)
def test_every_negative_renders_in_both_splits(char):
    rng = np.random.default_rng(ord(char))
    for split in SPLITS:
        assert sources_for(char, split), (char, split)
        assert render_ink(char, rng, 32, split).max() > 0.25


@pytest.mark.parametrize("char, split, height, source, error", [
    ("十", "val", 48, None, "split must be one of"),
    ("十", "train", 3, None, "height_px must be at least 4"),
    ("好", "train", 48, None, "no bundled train ink source"),
    ("十", "train", 48, "mmah", "cannot draw"),
    ("十", "test", 48, "kanjivg", "cannot draw"),
    ("가", "train", 48, "kanjivg", "cannot draw"),
])
def test_bad_requests_raise(char, split, height, source, error):
    with pytest.raises(ValueError, match=error):
        render_ink(char, np.random.default_rng(0), height, split, source=source)


# --- masks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("char, split, height", [
    ("一", "train", 16), ("二", "test", 24), ("四", "train", 64), ("九", "test", 64),
    ("十", "train", 200), ("八", "test", 120), ("가", "train", 40), ("x", "test", 40),
    ("+", "train", 30), ("7", "test", 30),
])
def test_mask_is_float_alpha_tightly_cropped(char, split, height):
    rng = np.random.default_rng(3)
    for _ in range(5):
        mask = render_ink(char, rng, height, split)
        assert mask.dtype == np.float32 and mask.ndim == 2
        assert mask.min() >= 0.0 and mask.max() <= 1.0 and mask.max() > 0.25
        rows = np.flatnonzero(mask.max(axis=1) > 0)
        cols = np.flatnonzero(mask.max(axis=0) > 0)
        h, w = mask.shape
        # Ink touches a 1-2 px margin on every side.
        assert rows[0] in (1, 2) and h - 1 - rows[-1] in (1, 2), (rows[0], rows[-1], h)
        assert cols[0] in (1, 2) and w - 1 - cols[-1] in (1, 2), (cols[0], cols[-1], w)


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("height", [20, 64, 160])
def test_full_height_characters_are_about_height_px_tall(split, height):
    rng = np.random.default_rng(height)
    ratios = []
    for char in "十七九":
        for _ in range(6):
            ratios.append(_ink_extent(render_ink(char, rng, height, split))[0] / height)
    ratios = np.array(ratios)
    assert 0.85 <= np.median(ratios) <= 1.2, ratios
    assert ratios.min() >= 0.6 and ratios.max() <= 1.6, ratios


@pytest.mark.parametrize("split", SPLITS)
def test_one_is_short_and_wide(split):
    rng = np.random.default_rng(11)
    for _ in range(10):
        h, w = _ink_extent(render_ink("一", rng, 64, split))
        assert h < 0.45 * 64 and w > 2.5 * h, (h, w)


@pytest.mark.parametrize("source", ["font:lxgw_wenkai", "font:seto", "font:ukai", "font:klee_one"])
@pytest.mark.parametrize("char", ["口", "日"])
def test_font_counters_stay_open(char, source):
    # Non-zero winding keeps the hole of 口 / 日 empty while the frame is inked.
    split = "train" if source in handwriting.SPLIT_SOURCES["train"] else "test"
    rng = np.random.default_rng(5)
    for _ in range(3):
        mask = render_ink(char, rng, 64, split, source=source)
        h, w = mask.shape
        # Centre of the (upper) counter, well inside the frame strokes.
        rows = (int(0.24 * h), int(0.36 * h)) if char == "日" else (int(0.4 * h), int(0.6 * h))
        counter = mask[rows[0]:rows[1], int(0.4 * w):int(0.6 * w)]
        assert counter.max() < 0.5
        assert mask.mean() > 0.05


# --- determinism ------------------------------------------------------------------------------


@pytest.mark.parametrize("char, split", [("三", "train"), ("六", "test"), ("나", "train"), ("÷", "test")])
def test_same_seed_same_mask_other_seed_other_mask(char, split):
    a = render_ink(char, np.random.default_rng(123), 48, split)
    b = render_ink(char, np.random.default_rng(123), 48, split)
    assert a.shape == b.shape and np.array_equal(a, b)
    others = [render_ink(char, np.random.default_rng(s), 48, split) for s in range(124, 130)]
    assert all(o.shape != a.shape or not np.array_equal(o, a) for o in others)
    # Samples differ from each other too, not just from the first.
    shapes = {o.shape for o in others}
    assert len(shapes) > 1


# --- stroke data ------------------------------------------------------------------------------


@pytest.mark.parametrize("d, expected_end, n_subpaths, error", [
    ("M0,0 L10,0", (10, 0), 1, None),
    ("m1,1 l2,0 l0,2", (3, 3), 1, None),
    ("M0,0 H5 V5 h-5 Z", (0, 0), 1, None),
    ("M0,0 C0,10 10,10 10,0", (10, 0), 1, None),
    ("M0,0c0,10,10,10,10,0s10-10,10,0", (20, 0), 1, None),
    ("M0,0 Q5,10 10,0 T20,0", (20, 0), 1, None),
    ("M25.25,32.4c1.77,.37,4.78.56,6.55.37", (31.8, 32.77), 1, None),
    ("M0,0 L1,1 M5,5 L6,5", (6, 5), 2, None),
    ("M0,0 1,0 2,0", (2, 0), 1, None),
    ("L1,1", None, 0, "must start with a moveto"),
    ("M0", None, 0, "missing arguments"),
    ("10,0", None, 0, "starts with a number"),
])
def test_parse_svg_path(d, expected_end, n_subpaths, error):
    if error:
        with pytest.raises(ValueError, match=error):
            strokes.parse_svg_path(d)
        return
    polys = strokes.parse_svg_path(d)
    assert len(polys) == n_subpaths
    np.testing.assert_allclose(polys[-1][-1], expected_end, atol=1e-9)


def test_cubic_bezier_is_sampled_between_its_ends():
    (poly,) = strokes.parse_svg_path("M0,0 C0,10 10,10 10,0", samples=16)
    assert len(poly) == 17
    assert poly[:, 1].max() == pytest.approx(7.5, abs=0.05)  # cubic peak: 3/4 of the control height


@pytest.mark.parametrize("char, count", [
    ("一", 1), ("二", 2), ("三", 3), ("四", 5), ("五", 4), ("六", 4), ("七", 2), ("八", 2), ("九", 2), ("十", 2),
])
def test_stroke_counts_and_orientation(char, count):
    for polys in (strokes.kanjivg_strokes(char), strokes.mmah_strokes(char)):
        assert len(polys) == count
        pts = np.vstack(polys)
        assert pts.min() > 0.0 and pts.max() < 1.0
        # First stroke of every numeral here is written left to right or top to bottom.
        first = polys[0]
        assert first[-1, 0] > first[0, 0] or first[-1, 1] > first[0, 1]
    if char in "二三":
        # y points down: stroke 1 is above the last stroke in both sources.
        for polys in (strokes.kanjivg_strokes(char), strokes.mmah_strokes(char)):
            assert polys[0][:, 1].mean() < polys[-1][:, 1].mean()


@pytest.mark.parametrize("key", ["lxgw_wenkai", "seto", "ukai", "klee_one"])
def test_font_glyph_of_ten_is_cross_shaped(key):
    contours = font_outlines.glyph_contours(key, "十")
    pts = np.vstack(contours)
    h = pts[:, 1].max() - pts[:, 1].min()
    w = pts[:, 0].max() - pts[:, 0].min()
    assert 0.6 < h < 1.0 and 0.6 < w < 1.0
    assert pts[:, 1].min() < -0.6  # y down: the glyph rises above the baseline
    assert font_outlines.glyph_contours(key, "好") == [] or key in ("lxgw_wenkai", "seto", "ukai")


# --- bundle -----------------------------------------------------------------------------------


def _asset_folders():
    yield os.path.join(ASSETS, "kanjivg")
    yield os.path.join(ASSETS, "makemeahanzi")
    for key in sorted(os.listdir(os.path.join(ASSETS, "fonts"))):
        yield os.path.join(ASSETS, "fonts", key)


@pytest.mark.parametrize("folder", list(_asset_folders()), ids=os.path.basename)
def test_licence_beside_every_asset_folder(folder):
    names = os.listdir(folder)
    assert any(n in LICENCE_NAMES for n in names), f"{folder} has no licence file: {names}"
    with open(os.path.join(ASSETS, "README.md"), encoding="utf-8") as f:
        assert os.path.basename(folder) + "/" in f.read()


def test_bundle_is_small():
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(ASSETS) for f in files)
    assert total < 5 * 1024 * 1024


_NO_NETWORK = r"""
import socket
def refuse(*args, **kwargs):
    raise OSError("network use during rendering")
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import numpy as np
from hanja_live.train.handwriting import render_ink, sources_for, SPLITS
rng = np.random.default_rng(0)
for split in SPLITS:
    for ch in "一二三四五六七八九十口가x7+":
        for src in sources_for(ch, split):
            render_ink(ch, rng, 32, split, source=src)
print("ok")
"""


def test_rendering_needs_no_network():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root, http_proxy="http://0.0.0.0:9", https_proxy="http://0.0.0.0:9")
    out = subprocess.run([sys.executable, "-c", _NO_NETWORK], cwd=root, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
