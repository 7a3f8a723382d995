"""Frame: what a source hands out — the image plus where it came from."""

from typing import NamedTuple, Optional

import numpy as np


class Frame(NamedTuple):
    image: np.ndarray  # (H, W, 3) uint8 BGR
    index: int  # type: ignore[assignment]  # 0-based position in the stream (counts dropped frames too)
    name: Optional[str]  # file name for image sources, None for video and cameras
    t_capture: float  # time.monotonic() when the frame was captured
