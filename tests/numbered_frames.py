"""Frames that carry their own number: 8 black/white bars, 8 px wide, which survive MJPG, JPEG
and MPEG-4, so a test can tell which frame came out of a capture, a file or a stream."""

import numpy as np

W, H = 64, 48
BITS = 8


def numbered_frame(number, width=W, height=H, dark=0, light=255):
    image = np.full((height, width, 3), dark, np.uint8)
    bar = width // BITS
    for bit in range(BITS):
        if (number >> bit) & 1:
            image[:, bit * bar:(bit + 1) * bar] = light
    return image


def frame_number(image, top=0):
    """The number numbered_frame wrote, read from rows top: onwards (below any overlay drawn above)."""
    bar = image.shape[1] // BITS
    # the middle of each bar, away from block edges that lossy codecs smear
    means = [image[top:, bit * bar + 2:(bit + 1) * bar - 2].mean() for bit in range(BITS)]
    return sum(1 << bit for bit, m in enumerate(means) if m > 128)
