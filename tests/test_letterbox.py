"""Letterbox: a red rectangle drawn at a known place is found again after the round trip."""

import cv2
import numpy as np
import pytest

from hanja_live.errors import ModelError
from hanja_live.letterbox import Letterbox, LetterboxTransform

RED_BGR = (0, 0, 255)


def find_rectangle(chw):
    """(x1, y1, x2, y2) of the red rectangle in a (3, H, W) RGB buffer, sub-pixel.

    Only content pixels count (the image is black with a red rectangle, so green is 0 there;
    padding is grey). Along the row and the column through the rectangle's middle, each
    edge sits where a sharp step would hold the same amount of red as the blurred profile.
    """
    red, green = chw[0].astype(np.float64), chw[1].astype(np.float64)
    content_rows = np.flatnonzero((green < 0.2).any(axis=1))
    content_cols = np.flatnonzero((green < 0.2).any(axis=0))
    ys, xs = np.nonzero(red > 0.5)
    mid_y, mid_x = int(np.median(ys)), int(np.median(xs))

    def edges(profile, start, stop, mid):
        low = start + np.sum(1.0 - profile[start:mid])
        high = mid + np.sum(profile[mid:stop])
        return low, high

    x1, x2 = edges(red[mid_y], content_cols[0], content_cols[-1] + 1, mid_x)
    y1, y2 = edges(red[:, mid_x], content_rows[0], content_rows[-1] + 1, mid_y)
    return np.array([[x1, y1, x2, y2]], np.float32)


def plain_letterbox(image, input_hw, scale, pad_x, pad_y, dtype):
    """Reference buffer built the obvious way, one temporary after another."""
    h, w = image.shape[:2]
    new_w, new_h = int(round(w * scale)), int(round(h * scale))
    canvas = np.full(input_hw + (3,), 114, np.uint8)
    canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = cv2.resize(
        image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return (canvas[:, :, ::-1].transpose(2, 0, 1).astype(np.float64) / 255.0).astype(dtype)


# src shape, rectangle x1 y1 x2 y2 (src px), network input (H, W), buffer dtype,
# expected (scale, pad_x, pad_y) worked out by hand, or the error and a piece of its message
CASES = [
    pytest.param((720, 1280, 3), (300, 200, 700, 500), (416, 416), np.float32,
                 (0.325, 0, 91), id="720p-416"),
    pytest.param((720, 1280, 3), (301, 203, 650, 611), (640, 640), np.float16,
                 (0.5, 0, 140), id="720p-640-fp16"),
    pytest.param((480, 640, 3), (100, 50, 333, 420), (416, 416), np.float32,
                 (0.65, 0, 52), id="4:3"),
    pytest.param((1280, 720, 3), (150, 400, 500, 1100), (416, 416), np.float32,
                 (0.325, 91, 0), id="portrait"),
    pytest.param((30, 40, 3), (7, 5, 29, 22), (416, 416), np.float32,
                 (10.4, 0, 52), id="tiny"),
    pytest.param((50, 20, 3), (4, 9, 15, 41), (416, 416), np.float16,
                 (8.32, 125, 0), id="tiny-portrait-fp16"),
    pytest.param((3024, 4032, 3), (1000, 700, 3000, 2500), (640, 640), np.float32,
                 (640 / 4032.0, 0, 80), id="larger-than-input"),
    pytest.param((640, 640, 3), (123, 45, 456, 600), (640, 640), np.float32,
                 (1.0, 0, 0), id="same-size"),
    # 251 * 416/333 = 313.56 rows -> 314, centred: (416 - 314) // 2 = 51
    pytest.param((251, 333, 3), (40, 30, 300, 200), (416, 416), np.float16,
                 (416 / 333.0, 0, 51), id="odd-size-fp16"),
    # 300 * 416/401 = 311.2 rows -> 311; 105 rows of padding: 52 above, 53 below
    pytest.param((300, 401, 3), (50, 40, 350, 260), (416, 416), np.float32,
                 (416 / 401.0, 0, 52), id="odd-padding"),
    pytest.param((720, 1280, 3), (300, 200, 700, 500), (384, 640), np.float32,
                 (0.5, 0, 12), id="non-square-input"),
    # the shipped 480x832 input: 720 * 0.65 = 468 rows, 12 rows of padding
    pytest.param((720, 1280, 3), (301, 203, 650, 611), (480, 832), np.float32,
                 (0.65, 0, 6), id="720p-shipped-832"),
    pytest.param((720, 1280, 3), (301, 203, 650, 611), (480, 832), np.float16,
                 (0.65, 0, 6), id="720p-shipped-832-fp16"),
    # 4:3 into it: the height sets the scale, bars left and right
    pytest.param((960, 1280, 3), (100, 50, 900, 900), (480, 832), np.float32,
                 (0.5, 96, 0), id="4:3-shipped-832"),
    pytest.param((720, 1280, 3), None, (400, 416), np.float32,
                 (ModelError, "model input 416x400 is not a multiple of stride 32"),
                 id="error-input-not-stride-multiple"),
    pytest.param((720, 1280, 3), None, (416, 416), np.uint8,
                 (ModelError, "model input dtype uint8 is not supported"), id="error-input-dtype"),
    pytest.param((720, 1280), None, (416, 416), np.float32,
                 (ValueError, "expects an (H, W, 3) uint8 BGR image"), id="error-gray-image"),
    pytest.param((720, 1280, 4), None, (416, 416), np.float32,
                 (ValueError, "expects an (H, W, 3) uint8 BGR image"), id="error-bgra-image"),
    pytest.param((0, 1280, 3), None, (416, 416), np.float32,
                 (ValueError, "expects an (H, W, 3) uint8 BGR image"), id="error-empty-image"),
]


@pytest.mark.parametrize("src_shape, rect, input_hw, dtype, expected", CASES)
def test_round_trip(src_shape, rect, input_hw, dtype, expected):
    image = np.zeros(src_shape, np.uint8)
    if rect is not None:
        x1, y1, x2, y2 = rect
        image[y1:y2, x1:x2] = RED_BGR
    out = np.zeros((1, 3) + input_hw, dtype)
    if isinstance(expected[0], type):
        error, message = expected
        with pytest.raises(error) as info:
            Letterbox(out)(image)
        assert message in str(info.value)
        return

    scale, pad_x, pad_y = expected
    letterbox = Letterbox(out)
    transform = letterbox(image)
    assert letterbox.out is out
    assert transform.src_hw == src_shape[:2]
    assert (transform.pad_x, transform.pad_y) == (pad_x, pad_y)
    assert transform.scale == pytest.approx(scale)

    found = transform.to_original(find_rectangle(out[0]))
    # 1 source px; when shrinking over 2x, INTER_LINEAR reads only 2 of every 1/scale source
    # columns, so an edge between the samples can be placed to half a network pixel only
    tolerance = max(1.0, 0.5 / scale)
    np.testing.assert_allclose(found[0], rect, atol=tolerance)

    # red lands in the first plane (RGB); the whole buffer is exactly x / 255 of the letterboxed
    # image, padding included (114 / 255 in the buffer's dtype)
    cx, cy = [int(round(v * scale + p)) for v, p in
              (((rect[0] + rect[2]) / 2.0, pad_x), ((rect[1] + rect[3]) / 2.0, pad_y))]
    assert out[0, :, cy, cx].tolist() == [1.0, 0.0, 0.0]
    new_h, new_w = int(round(src_shape[0] * scale)), int(round(src_shape[1] * scale))
    padding = np.ones(input_hw, bool)
    padding[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = False
    assert (out[0][:, padding] == np.array(114 / 255.0, dtype)).all()
    reference = plain_letterbox(image, input_hw, scale, pad_x, pad_y, dtype)
    np.testing.assert_array_equal(out[0], reference)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_random_image_matches_plain_reference(dtype):
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    out = np.zeros((1, 3, 416, 416), dtype)
    Letterbox(out)(image)
    np.testing.assert_array_equal(out[0], plain_letterbox(image, (416, 416), 0.325, 0, 91, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_fallback_without_in_place_opencv(monkeypatch, dtype):
    """An OpenCV whose split returns new planes and that lacks convertFp16 gives the same buffer."""
    real_split = cv2.split
    monkeypatch.setattr(cv2, "split", lambda m, mv=None: tuple(p.copy() for p in real_split(m)))
    monkeypatch.delattr(cv2, "convertFp16", raising=False)
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    out = np.zeros((1, 3, 416, 416), dtype)
    transform = Letterbox(out)(image)
    assert (transform.pad_x, transform.pad_y) == (0, 52)
    np.testing.assert_array_equal(out[0], plain_letterbox(image, (416, 416), 0.65, 0, 52, dtype))


def test_size_change_refills_padding():
    """A wide white frame, then a portrait one: nothing of the first may stay in the border."""
    out = np.zeros((1, 3, 416, 416), np.float32)
    letterbox = Letterbox(out)
    letterbox(np.full((720, 1280, 3), 255, np.uint8))
    assert (out[0, :, 200, :] == 1.0).all()
    transform = letterbox(np.zeros((1280, 720, 3), np.uint8))
    assert (transform.pad_x, transform.pad_y) == (91, 0)
    grey = np.array(114 / 255.0, np.float32)
    assert (out[0, :, :, :91] == grey).all() and (out[0, :, :, 91 + 234:] == grey).all()
    assert (out[0, :, :, 91:91 + 234] == 0.0).all()
    # same size again: same transform object, buffer updated in place
    again = letterbox(np.full((1280, 720, 3), 255, np.uint8))
    assert again is transform and letterbox.out is out
    assert (out[0, :, :, 91:91 + 234] == 1.0).all()


@pytest.mark.parametrize(
    "transform, boxes, expected",
    [
        (LetterboxTransform(0.325, 0.0, 91.0, (720, 1280)), [[65, 156, 130, 221]],
         [[200, 200, 400, 400]]),
        # everything left of / above the image and beyond its far side is clipped
        (LetterboxTransform(0.5, 10.0, 20.0, (100, 200)), [[0, 0, 500, 500]],
         [[0, 0, 200, 100]]),
        (LetterboxTransform(2.0, 0.0, 0.0, (10, 10)), np.zeros((0, 4)), np.zeros((0, 4))),
        (LetterboxTransform(2.0, 0.0, 0.0, (10, 10)), [[1, 2, 3]], ValueError),
        (LetterboxTransform(2.0, 0.0, 0.0, (10, 10)), [1, 2, 3, 4], ValueError),
    ],
)
def test_to_original(transform, boxes, expected):
    if isinstance(expected, type):
        with pytest.raises(expected):
            transform.to_original(np.array(boxes, np.float32))
        return
    mapped = transform.to_original(np.array(boxes, np.float32))
    assert mapped.dtype == np.float32
    np.testing.assert_allclose(mapped, np.array(expected, np.float32).reshape(-1, 4), atol=1e-4)
