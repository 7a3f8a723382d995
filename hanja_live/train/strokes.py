"""Stroke skeletons from the bundled KanjiVG SVGs and Make Me a Hanzi medians.

Every loader returns the character's strokes in writing order, each an (N, 2) float64 array
of (x, y) points in a unit box: x right, y down, the source's em box mapped to [0, 1].
"""

import functools
import json
import os
import re
from typing import Dict, List

import numpy as np

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
KANJIVG_DIR = os.path.join(ASSETS, "kanjivg")
MMAH_FILE = os.path.join(ASSETS, "makemeahanzi", "medians.json")

KANJIVG_BOX = 109.0  # KanjiVG viewBox is 0 0 109 109
MMAH_BOX = 1024.0  # Make Me a Hanzi: 1024 units, y up, baseline 900 units below the top
MMAH_TOP = 900.0

_TOKEN = re.compile(r"[MmLlHhVvCcSsQqTtZz]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_PATH_D = re.compile(r"<path\b[^>]*?\sd=\"([^\"]+)\"")
_ARGS = {"M": 2, "L": 2, "H": 1, "V": 1, "C": 6, "S": 4, "Q": 4, "T": 2, "Z": 0}


def _bezier(points: np.ndarray, samples: int) -> np.ndarray:
    """Points on a Bézier curve of any degree; points (K, 2) control points -> (samples, 2),
    excluding t = 0 (the previous segment already ends there)."""
    t = np.linspace(0.0, 1.0, samples + 1)[1:, None]
    if len(points) == 4:
        p0, p1, p2, p3 = points
        u = 1.0 - t
        return u ** 3 * p0 + 3 * u * u * t * p1 + 3 * u * t * t * p2 + t ** 3 * p3
    p0, p1, p2 = points
    u = 1.0 - t
    return u * u * p0 + 2 * u * t * p1 + t * t * p2


def parse_svg_path(d: str, samples: int = 8) -> List[np.ndarray]:
    """Flatten SVG path data into polylines, one (N, 2) array per subpath.

    Supports M L H V C S Q T Z in absolute and relative form; each Bézier segment contributes
    ``samples`` points. Raises ValueError on malformed data.
    """
    tokens = _TOKEN.findall(d)
    subpaths = []  # type: List[List[np.ndarray]]
    current = np.zeros(2)
    start = np.zeros(2)
    last_ctrl = None
    last_cmd = ""
    cmd = ""
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.isalpha():
            cmd = tok
            i += 1
            if cmd in "Zz":
                if subpaths and not np.allclose(current, start):
                    subpaths[-1].append(start[None].copy())
                current = start.copy()
                last_cmd, last_ctrl = cmd, None
                continue
        elif not cmd:
            raise ValueError(f"SVG path data starts with a number: {d[:40]!r}")
        upper = cmd.upper()
        if upper != "M" and not subpaths:
            raise ValueError(f"SVG path data must start with a moveto: {d[:40]!r}")
        n = _ARGS[upper]
        if i + n > len(tokens) or any(t.isalpha() for t in tokens[i:i + n]):
            raise ValueError(f"SVG path command {cmd!r} is missing arguments in {d[:40]!r}")
        args = np.array(tokens[i:i + n], dtype=np.float64)
        i += n
        rel = cmd.islower()
        base = current if rel else np.zeros(2)
        if upper == "M":
            current = base + args
            start = current.copy()
            subpaths.append([current[None].copy()])
            # Further coordinate pairs after a moveto are implicit linetos.
            cmd = "l" if rel else "L"
            last_ctrl = None
        elif upper in "LHV":
            if upper == "L":
                nxt = base + args
            elif upper == "H":
                nxt = np.array([args[0] + (current[0] if rel else 0.0), current[1]])
            else:
                nxt = np.array([current[0], args[0] + (current[1] if rel else 0.0)])
            subpaths[-1].append(nxt[None])
            current = nxt
            last_ctrl = None
        else:  # Bézier: C / S cubic, Q / T quadratic; S and T reflect the previous control point
            pts = args.reshape(-1, 2) + base
            if upper in "ST":
                family = "CS" if upper == "S" else "QT"
                smooth = last_cmd.upper() in family and last_ctrl is not None
                pts = np.vstack([2 * current - last_ctrl if smooth else current, pts])
            subpaths[-1].append(_bezier(np.vstack([current, pts]), samples))
            last_ctrl = pts[-2]
            current = pts[-1]
        last_cmd = cmd
    return [np.vstack(parts) for parts in subpaths]


def _kanjivg_file(char: str, kaisho: bool) -> str:
    suffix = "-Kaisho" if kaisho else ""
    return os.path.join(KANJIVG_DIR, f"{ord(char):05x}{suffix}.svg")


def has_kanjivg(char: str, kaisho: bool = False) -> bool:
    return os.path.exists(_kanjivg_file(char, kaisho))


@functools.lru_cache(maxsize=None)
def _kanjivg_strokes(char: str, kaisho: bool) -> tuple:
    path = _kanjivg_file(char, kaisho)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    strokes = []
    for d in _PATH_D.findall(text):
        for poly in parse_svg_path(d):
            strokes.append(poly / KANJIVG_BOX)
    if not strokes:
        raise ValueError(f"{path} holds no stroke paths")
    return tuple(strokes)


def kanjivg_strokes(char: str, kaisho: bool = False) -> List[np.ndarray]:
    """KanjiVG strokes of ``char`` (the Kaisho variant if asked) in the unit box."""
    return [s.copy() for s in _kanjivg_strokes(char, kaisho)]


@functools.lru_cache(maxsize=1)
def _mmah_table() -> Dict[str, list]:
    with open(MMAH_FILE, encoding="utf-8") as f:
        return json.load(f)


def has_mmah(char: str) -> bool:
    return char in _mmah_table()


@functools.lru_cache(maxsize=None)
def _mmah_strokes(char: str) -> tuple:
    strokes = []
    for median in _mmah_table()[char]:
        pts = np.asarray(median, dtype=np.float64)
        pts[:, 1] = MMAH_TOP - pts[:, 1]
        strokes.append(pts / MMAH_BOX)
    return tuple(strokes)


def mmah_strokes(char: str) -> List[np.ndarray]:
    """Make Me a Hanzi stroke medians of ``char`` in the unit box (y flipped to point down)."""
    return [s.copy() for s in _mmah_strokes(char)]
