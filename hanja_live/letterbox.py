"""Letterbox: fit a BGR frame into the network input, written straight into the backend buffer.

The frame keeps its aspect ratio, is centred and padded with grey (114), then turned into
RGB, channel-first, scaled by 1/255 and cast to the buffer's dtype. All scratch memory is
allocated once per input size; the padding is refilled only when the frame size changes.

Measured on the dev machine (x86, median of 300 calls, 1280x720 frame): the whole call
takes 0.46 ms into 416x416 fp32, 0.56 ms fp16, 0.81-0.85 ms into 640x640 fp32, 1.04-1.12 ms
fp16. Reordering with cv2.split into RGB planes, then one contiguous ufunc (plus
cv2.convertFp16 for fp16), beats one strided ufunc from the BGR canvas: 0.55 / 1.67 /
1.06-1.10 / 3.6-3.7 ms for the same four. INTER_AREA costs 2.4 ms against 0.18 ms for
INTER_LINEAR when shrinking 1280x720 to 416x234, so INTER_LINEAR is used everywhere.
Into the default 480x832 fp32 input it takes 0.93-1.01 ms against 0.73-0.78 ms into 640x640
(same run): the frame is resized to 832x468, 0.33 ms, where 640x360 is an exact halving, 0.12 ms.
"""

from typing import NamedTuple, Optional, Tuple

import cv2
import numpy as np

from .errors import ModelError

# dividing (not multiplying by 1/255) gives exactly x / 255, as in training; 0.02 ms more
_MAX_U8 = np.float32(255.0)


class LetterboxTransform(NamedTuple):
    """How a source image was placed in the network input: lb = src * scale + pad."""

    scale: float
    pad_x: float
    pad_y: float
    src_hw: Tuple[int, int]

    def to_original(self, xyxy):
        # type: (np.ndarray) -> np.ndarray
        """(N, 4) boxes in network-input pixels -> (N, 4) float32 in source pixels, clipped."""
        boxes = np.asarray(xyxy, dtype=np.float32)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError("to_original expects (N, 4) boxes, got shape %s" % (boxes.shape,))
        h, w = self.src_hw
        pad = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], np.float32)
        limit = np.array([w, h, w, h], np.float32)
        mapped = (boxes - pad) / np.float32(self.scale)
        np.clip(mapped, 0.0, limit, out=mapped)
        return mapped


def _fit(src_hw, dst_hw):
    """Scale and placement of a (h, w) image centred in a (H, W) canvas."""
    (h, w), (H, W) = src_hw, dst_hw
    scale = min(H / float(h), W / float(w))
    # the axis that limits the scale fills the canvas exactly; the other rounds to a pixel
    new_w = min(W, max(1, int(round(w * scale))))
    new_h = min(H, max(1, int(round(h * scale))))
    return scale, new_w, new_h, (W - new_w) // 2, (H - new_h) // 2


class Letterbox(object):
    """Callable that fills ``out`` (1, 3, H, W) float32/float16 from a BGR uint8 frame."""

    def __init__(self, out, stride=32, pad_value=114):
        # type: (np.ndarray, int, int) -> None
        if not isinstance(out, np.ndarray) or out.ndim != 4 or out.shape[:2] != (1, 3):
            raise ModelError("model input shape %s is not (1, 3, H, W); export the model with "
                             "batch size 1 and 3 colour channels"
                             % (getattr(out, "shape", None),))
        if out.dtype not in (np.float32, np.float16):
            raise ModelError("model input dtype %s is not supported; export the model with a "
                             "float32 or float16 input" % out.dtype)
        H, W = out.shape[2:]
        if H % stride or W % stride:
            raise ModelError("model input %dx%d is not a multiple of stride %d; re-export the "
                             "model with an image size divisible by %d" % (W, H, stride, stride))
        if not out.flags.c_contiguous:
            raise ValueError("Letterbox needs a C-contiguous input buffer")
        self.out = out
        self.input_hw = (H, W)
        self.pad_value = int(pad_value)
        self._canvas = np.full((H, W, 3), self.pad_value, np.uint8)
        self._planes = np.empty((3, H, W), np.uint8)  # R, G, B planes
        self._plane_list = [self._planes[2], self._planes[1], self._planes[0]]
        self._split_in_place = self._probe_split()
        self._fp16_scratch = None  # type: Optional[np.ndarray]  # (3H, W) float32, when cv2.convertFp16 fills fp16 buffers
        self._fp16_scratch_chw = None  # type: Optional[np.ndarray]
        self._fp16_out = None  # type: Optional[np.ndarray]
        if out.dtype == np.float16:
            self._probe_fp16()
        # set by _configure for each new frame size
        self._src_hw = None  # type: Optional[Tuple[int, int]]
        self._target = self._canvas[:0, :0]  # view of the canvas that the resized frame fills
        self._new_wh = (0, 0)
        self._transform = LetterboxTransform(1.0, 0.0, 0.0, (0, 0))

    def _probe_split(self):
        """True when cv2.split writes into the given planes (no copy) on this OpenCV."""
        result = cv2.split(self._canvas, self._plane_list)
        return all(a is b for a, b in zip(result, self._plane_list))

    def _probe_fp16(self):
        """Use cv2.convertFp16 into the buffer when this OpenCV offers it in place."""
        if not hasattr(cv2, "convertFp16"):
            return
        H, W = self.input_hw
        scratch = np.zeros((3 * H, W), np.float32)
        # the fp16 buffer seen as int16 bits: cv2.convertFp16 writes CV_16S
        bits = self.out.view(np.int16).reshape(3 * H, W)
        try:
            result = cv2.convertFp16(scratch, bits)
        except cv2.error:
            return
        if result is bits:
            self._fp16_scratch = scratch
            self._fp16_scratch_chw = scratch.reshape(3, H, W)
            self._fp16_out = bits

    def _configure(self, src_hw):
        scale, new_w, new_h, left, top = _fit(src_hw, self.input_hw)
        self._canvas.fill(self.pad_value)
        self._target = self._canvas[top:top + new_h, left:left + new_w]
        self._new_wh = (new_w, new_h)
        self._src_hw = src_hw
        self._transform = LetterboxTransform(scale, float(left), float(top), src_hw)

    def __call__(self, image_bgr):
        # type: (np.ndarray) -> LetterboxTransform
        image = image_bgr  # (h, w, 3) uint8
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.size == 0:
            raise ValueError("Letterbox expects an (H, W, 3) uint8 BGR image, got %s %s"
                             % (image.shape, image.dtype))
        src_hw = image.shape[:2]
        if src_hw != self._src_hw:
            self._configure(src_hw)
        target = self._target
        if self._new_wh == (src_hw[1], src_hw[0]):
            np.copyto(target, image)
        else:
            resized = cv2.resize(image, self._new_wh, dst=target, interpolation=cv2.INTER_LINEAR)
            if resized is not target:
                target[...] = resized
        self._fill_input()
        return self._transform

    def _fill_input(self):
        """Canvas (H, W, 3) BGR uint8 -> out[0] (3, H, W) RGB in [0, 1]."""
        if self._split_in_place:
            cv2.split(self._canvas, self._plane_list)
            rgb = self._planes
        else:
            rgb = self._canvas[:, :, ::-1].transpose(2, 0, 1)
        if self._fp16_out is not None:
            np.divide(rgb, _MAX_U8, out=self._fp16_scratch_chw, dtype=np.float32)
            cv2.convertFp16(self._fp16_scratch, self._fp16_out)
        else:
            # dtype=float32: a float32 scalar with uint8 would otherwise compute in float16
            np.divide(rgb, _MAX_U8, out=self.out[0], dtype=np.float32, casting="unsafe")
