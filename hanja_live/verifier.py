"""Verifier: a second look at each detection, by a small classifier on its patch.

The detector sees a whole frame at 480x832 and confuses numerals with characters that differ by
a stroke or a dot (丸 / 九, 互 / 五, + / 十). The verifier sees only the grey patch around one box
(hanja_live.patches) and answers with the probabilities of the ten numerals and "other"
(hanja_live.train.train_verifier trains it). A detection keeps its class; its score becomes
conf x p(class), and it stays only if that still reaches the detector's threshold. So a
verifier can only remove detections or lower their scores, never add any.

The model is an ONNX file with input ``patches`` (B, 1, S, S) float32 grey levels and output
``probs`` (B, 11); its metadata names the classes, S and the patch margin. It runs in ONNX
Runtime on the CPU (a few detections a frame; CUDA when this ONNX Runtime has it); where ONNX
Runtime is missing (a Jetson running TensorRT alone), the app says so and runs without it.
"""

import json
import os
from typing import List, NamedTuple, Sequence

import numpy as np

from .backends.loader import one_line, read_onnx
from .backends.onnxruntime_backend import import_onnxruntime, ort_errors, pick_providers
from .detections import Detections
from .errors import HanjaLiveError, ModelError
from .patches import cut_patches, to_gray

# the detector's provider order without TensorRT's, which would build an engine for every new batch size
SKIPPED_PROVIDER = "TensorrtExecutionProvider"
RETRAIN = "train one with python -m hanja_live.train.train_verifier, or set model.verifier: null"


class VerifierUnavailable(HanjaLiveError):
    """ONNX Runtime, which runs the verifier, is not installed (e.g. a Jetson with TensorRT only)."""


class VerifierInfo(NamedTuple):
    names: List[str]  # the detector's classes, then "other"
    patch_size: int
    patch_pad: float


def verifier_info(path, metadata):
    # type: (str, dict) -> VerifierInfo
    """The verifier's settings from its ONNX metadata; ModelError naming the fix if they are not there."""
    if metadata.get("kind") != "verifier":
        raise ModelError("%s is not a verifier (its metadata has no kind: verifier); pass the "
                         "verifier's .onnx file, or %s" % (path, RETRAIN))
    try:
        names = json.loads(metadata["names"])
        size, pad = int(metadata["patch_size"]), float(metadata["patch_pad"])
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelError("%s: verifier metadata incomplete (%s); %s" % (path, one_line(exc), RETRAIN))
    if not isinstance(names, list) or len(names) < 2 or size < 8 or pad < 1.0:
        raise ModelError("%s: verifier metadata out of range (names %r, patch_size %d, patch_pad %g); %s"
                         % (path, names, size, pad, RETRAIN))
    return VerifierInfo([str(n) for n in names], size, pad)


class Verifier(object):
    """Rescores Detections of one frame; configured once, no per-call state."""

    def __init__(self, path, detector_names, threads=0):
        # type: (str, Sequence[str], int) -> None
        """``detector_names``: the detector's classes, which must be the verifier's first ones."""
        if not os.path.isfile(path):
            raise ModelError("verifier file not found: %s \u2014 pass --verifier PATH, or run without it: "
                             "--no-verifier (model.verifier: null)" % path)
        summary = read_onnx(path)
        self.info = verifier_info(path, summary.metadata)
        if list(self.info.names[:-1]) != list(detector_names):
            raise ModelError("%s verifies classes %s, the detector has %s; use the verifier trained "
                             "for this model, or set model.verifier: null"
                             % (path, " ".join(self.info.names[:-1]), " ".join(detector_names)))
        try:
            ort = import_onnxruntime()
        except HanjaLiveError as exc:
            raise VerifierUnavailable(str(exc))
        self._errors = ort_errors(ort)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        providers = [p for p in pick_providers(ort.get_available_providers()) if p != SKIPPED_PROVIDER]
        try:
            self._session = ort.InferenceSession(path, sess_options=options, providers=providers)
        except self._errors as exc:
            raise ModelError("ONNX Runtime cannot load the verifier %s: %s; %s" % (path, one_line(exc), RETRAIN))
        inputs = self._session.get_inputs()
        shape = inputs[0].shape if len(inputs) == 1 else None
        size = self.info.patch_size
        if shape is None or len(shape) != 4 or list(shape[1:]) != [1, size, size]:
            raise ModelError("%s: the verifier's input is %s, not (batch, 1, %d, %d); %s"
                             % (path, shape, size, size, RETRAIN))
        self._input = inputs[0].name
        self.providers = self._session.get_providers()

    def probs(self, patches):
        # type: (np.ndarray) -> np.ndarray
        """(N, S, S) uint8 patches -> (N, classes + 1) probabilities."""
        if not len(patches):
            return np.zeros((0, len(self.info.names)), np.float32)
        feed = {self._input: patches[:, None].astype(np.float32)}
        try:
            return np.asarray(self._session.run(None, feed)[0], np.float32)
        except self._errors as exc:
            raise HanjaLiveError("ONNX Runtime failed while running the verifier: %s" % one_line(exc))

    def __call__(self, frame, detections, conf):
        # type: (np.ndarray, Detections, float) -> Detections
        """``detections`` of ``frame`` (BGR or grey) with scores conf x p(class), those below
        ``conf`` dropped."""
        if not len(detections):
            return detections
        patches = cut_patches(to_gray(frame), detections.xyxy, self.info.patch_size, self.info.patch_pad)
        p = self.probs(patches)
        score = detections.conf * p[np.arange(len(p)), detections.cls]
        keep = score >= conf
        return Detections(detections.xyxy[keep], score[keep], detections.cls[keep])
