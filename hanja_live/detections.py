"""Detections: the one record passed from the decoder to overlay and sinks."""

import numpy as np


class Detections(object):
    """Boxes in original-frame pixels.

    xyxy: (N, 4) float32, x1 y1 x2 y2
    conf: (N,)   float32, score in [0, 1]
    cls:  (N,)   int32, class index
    """

    __slots__ = ("xyxy", "conf", "cls")

    def __init__(self, xyxy, conf, cls):
        self.xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        self.conf = np.asarray(conf, dtype=np.float32).reshape(-1)
        self.cls = np.asarray(cls, dtype=np.int32).reshape(-1)
        if not (len(self.xyxy) == len(self.conf) == len(self.cls)):
            raise ValueError(
                "Detections fields differ in length: xyxy %d, conf %d, cls %d"
                % (len(self.xyxy), len(self.conf), len(self.cls))
            )

    @classmethod
    def empty(cls):
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int32))

    def __len__(self):
        return len(self.conf)

    def __repr__(self):
        return "Detections(n=%d)" % len(self)

    def to_records(self, names):
        """JSON-ready list: [{"cls", "label", "conf", "box": [x1, y1, x2, y2]}]."""
        records = []
        for box, conf, c in zip(self.xyxy.tolist(), self.conf.tolist(), self.cls.tolist()):
            records.append(
                {
                    "cls": int(c),
                    "label": names[c] if 0 <= c < len(names) else str(c),
                    "conf": round(float(conf), 5),
                    "box": [round(v, 2) for v in box],
                }
            )
        return records
