"""Shared fixtures: tiny real ONNX models with known outputs, small real videos and images."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hanja_live import CLASS_NAMES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_constant_yolo_model(path, raw, input_hw=(64, 64), names=CLASS_NAMES, layout="anchor_free",
                             input_dtype="float32"):
    """An ONNX model whose output is ``raw`` (shape (1, 4+nc, N) or (1, N, 5+nc)), whatever the input.

    The output still depends on the input (x * 0 is added) so that runtimes cannot fold the
    input away. Metadata is written the way hanja_live.train.export writes it.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.FLOAT16 if input_dtype == "float16" else TensorProto.FLOAT
    raw = np.asarray(raw, dtype=np.float16 if input_dtype == "float16" else np.float32)
    h, w = input_hw
    nodes = [
        helper.make_node("ReduceMax", ["images"], ["m"], keepdims=1),  # (1, 1, 1, 1)
        helper.make_node("Reshape", ["m", "shape3"], ["m3"]),  # (1, 1, 1)
        helper.make_node("Mul", ["m3", "zero"], ["z"]),
        helper.make_node("Add", ["raw", "z"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes, "const_yolo",
        [helper.make_tensor_value_info("images", elem, [1, 3, h, w])],
        [helper.make_tensor_value_info("output0", elem, list(raw.shape))],
        initializer=[numpy_helper.from_array(raw, "raw"),
                     numpy_helper.from_array(np.zeros((), raw.dtype), "zero"),
                     numpy_helper.from_array(np.array([1, 1, 1], np.int64), "shape3")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 7
    meta = {"names": json.dumps(list(names), ensure_ascii=False), "imgsz": "[%d, %d]" % (h, w),
            "stride": "32", "layout": layout}
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def anchor_free_raw(boxes_cxcywh, classes, scores, nc=len(CLASS_NAMES), n=8):
    """(1, 4+nc, n) raw output holding the given boxes (input-pixel cx, cy, w, h), rest empty."""
    raw = np.zeros((1, 4 + nc, n), np.float32)
    for i, (box, c, s) in enumerate(zip(boxes_cxcywh, classes, scores)):
        raw[0, :4, i] = box
        raw[0, 4 + c, i] = s
    return raw


@pytest.fixture
def tiny_model(tmp_path):
    """64x64 model that always sees one 三 (class 2, score 0.9) centred at (32, 32), 20x10 px."""
    raw = anchor_free_raw([(32, 32, 20, 10)], [2], [0.9])
    return make_constant_yolo_model(tmp_path / "tiny.onnx", raw)


@pytest.fixture
def wide_model(tmp_path):
    """The same 三 in a 64-high, 96-wide input (H != W, to tell W x H from H x W in messages)."""
    raw = anchor_free_raw([(48, 32, 20, 10)], [2], [0.9])
    return make_constant_yolo_model(tmp_path / "wide.onnx", raw, input_hw=(64, 96))


@pytest.fixture
def run_cli():
    """Run ``python -m hanja_live ARGS`` in a subprocess; returns CompletedProcess (text)."""

    def run(*args, timeout=120, env=None, cwd=None):
        full_env = dict(os.environ)
        full_env.pop("DISPLAY", None)
        if env:
            full_env.update(env)
        return subprocess.run([sys.executable, "-m", "hanja_live"] + [str(a) for a in args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=timeout, env=full_env,
                              cwd=cwd or ROOT)

    return run


def write_video(path, frames, fps=10.0, fourcc="MJPG"):
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write %s" % path
    for frame in frames:
        writer.write(frame)
    writer.release()
    return str(path)
