"""Square grey patches around boxes: what the verifier sees of each detection.

Training (hanja_live.train.verifier_crops) and the app cut them with this one function, so the
classifier is trained on exactly what it is shown.
"""

import cv2
import numpy as np

PATCH_SIZE = 64  # pixels on a side
PATCH_PAD = 1.3  # patch side = this x the box's longer side: the whole ink and a margin of paper


def to_gray(frame):
    # type: (np.ndarray) -> np.ndarray
    """(H, W) uint8 from a BGR (H, W, 3) or grey (H, W) frame."""
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def cut_patches(gray, xyxy, size=PATCH_SIZE, pad=PATCH_PAD):
    # type: (np.ndarray, np.ndarray, int, float) -> np.ndarray
    """(N, size, size) uint8: for each box (N, 4) x1 y1 x2 y2 in frame pixels, the square of side
    pad x its longer side centred on it, resized to size x size. Beyond the frame's edge the
    edge pixels repeat (a box at the border keeps its shape instead of gaining a black bar)."""
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    out = np.empty((len(boxes), size, size), np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        side = max(int(round(max(x2 - x1, y2 - y1, 1.0) * pad)), 2)
        patch = cv2.getRectSubPix(gray, (side, side), ((x1 + x2) * 0.5, (y1 + y2) * 0.5))
        # INTER_AREA averages when shrinking (thin strokes stay, no aliasing); LINEAR when growing
        interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        out[i] = cv2.resize(patch, (size, size), interpolation=interp)
    return out
