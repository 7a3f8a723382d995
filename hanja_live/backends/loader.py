"""Choose an inference backend, load the model into it, and say in one log line what runs.

Also the checks both backends share: reading an ONNX file's metadata and I/O shapes without
the ``onnx`` package (JetPack does not ship it), the (1, 3, H, W) input rule, and where the
class names come from (a sidecar YAML beside the model wins over the ONNX metadata).
"""

import os
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from ..errors import ConfigError, HanjaLiveError, ModelError
from ..model_info import ModelInfo, load_sidecar, model_info_from_mapping, sidecar_path
from .base import Backend

BACKENDS = ("auto", "tensorrt", "onnxruntime")
REQUESTED_PRECISIONS = ("auto", "fp16", "fp32", "int8")

TENSORRT_HOWTO = ("it comes with JetPack on Jetson (sudo apt-get install nvidia-jetpack, then "
                  "./run.sh --setup for pycuda); on x86 install TensorRT from NVIDIA, or use "
                  "--backend onnxruntime")
ONNXRUNTIME_HOWTO = ("pip install onnxruntime (on Jetson: the onnxruntime-gpu wheel for your JetPack), "
                     "or use --backend tensorrt")

Dim = Union[int, str, None]  # symbolic dimensions come as names (ONNX) or None

# ONNX TensorProto.DataType codes this app cares about
ONNX_FLOAT, ONNX_UINT8, ONNX_INT8, ONNX_FLOAT16 = 1, 2, 3, 10


# --- ONNX file summary: a minimal protobuf reader ------------------------------------------------

class OnnxSummary(NamedTuple):
    metadata: Dict[str, str]  # ModelProto.metadata_props
    input_shape: List[Dim]  # first graph input that is not an initializer
    input_type: int  # its ONNX element type
    output_shapes: List[List[Dim]]
    op_types: frozenset  # every NodeProto.op_type in the main graph
    initializer_types: Dict[int, int]  # ONNX element type -> number of initializers


def _varint(buf, pos, end):
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise ValueError("file ends inside a number at byte %d" % pos)
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed number at byte %d" % pos)


def _fields(buf, start, end):
    """Yield (field number, wire type, value): an int for varints, (start, end) for bytes."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("malformed field at byte %d" % pos)
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield field, wire, value
            continue
        if wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise ValueError("file ends inside a %d-byte field at byte %d (truncated?)" % (length, pos))
            yield field, wire, (pos, pos + length)
            pos += length
            continue
        if wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError("unknown field encoding %d at byte %d" % (wire, pos))
        if pos > end:
            raise ValueError("file ends inside a field at byte %d (truncated?)" % end)


def _text(buf, span):
    return bytes(buf[span[0]:span[1]]).decode("utf-8", "replace")


def _value_info(buf, span):
    """ValueInfoProto -> (name, element type, dims)."""
    name, elem_type, dims = "", 0, []  # type: str, int, List[Dim]
    for field, wire, value in _fields(buf, *span):
        if field == 1 and wire == 2:
            name = _text(buf, value)
        elif field == 2 and wire == 2:  # TypeProto
            for f2, w2, v2 in _fields(buf, *value):
                if f2 != 1 or w2 != 2:  # only tensor_type
                    continue
                for f3, w3, v3 in _fields(buf, *v2):
                    if f3 == 1 and w3 == 0:
                        elem_type = v3
                    elif f3 == 2 and w3 == 2:  # TensorShapeProto
                        for f4, w4, v4 in _fields(buf, *v3):
                            if f4 == 1 and w4 == 2:
                                dims.append(_dimension(buf, v4))
    return name, elem_type, dims


def _dimension(buf, span):
    dim = None  # type: Dim
    for field, wire, value in _fields(buf, *span):
        if field == 1 and wire == 0:
            dim = value
        elif field == 2 and wire == 2:
            dim = _text(buf, value)
    return dim


def _scan_onnx(buf):
    metadata = {}  # type: Dict[str, str]
    graph = None
    has_ir_version = False
    for field, wire, value in _fields(buf, 0, len(buf)):
        if field == 1 and wire == 0:
            has_ir_version = True
        elif field == 7 and wire == 2:
            graph = value
        elif field == 14 and wire == 2:
            key, text = "", ""
            for f2, w2, v2 in _fields(buf, *value):
                if f2 == 1 and w2 == 2:
                    key = _text(buf, v2)
                elif f2 == 2 and w2 == 2:
                    text = _text(buf, v2)
            metadata[key] = text
    if not has_ir_version or graph is None:
        raise ValueError("no ONNX graph in it")
    op_types = set()
    initializer_names = set()
    initializer_types = {}  # type: Dict[int, int]
    inputs, outputs = [], []
    for field, wire, value in _fields(buf, *graph):
        if wire != 2:
            continue
        if field == 1:  # NodeProto
            for f2, w2, v2 in _fields(buf, *value):
                if f2 == 4 and w2 == 2:
                    op_types.add(_text(buf, v2))
        elif field == 5:  # TensorProto
            data_type, name = 0, ""
            for f2, w2, v2 in _fields(buf, *value):
                if f2 == 2 and w2 == 0:
                    data_type = v2
                elif f2 == 8 and w2 == 2:
                    name = _text(buf, v2)
            initializer_types[data_type] = initializer_types.get(data_type, 0) + 1
            initializer_names.add(name)
        elif field == 11:
            inputs.append(_value_info(buf, value))
        elif field == 12:
            outputs.append(_value_info(buf, value))
    # IR < 4 lists weights among the graph inputs too
    inputs = [i for i in inputs if i[0] not in initializer_names]
    if not inputs:
        raise ValueError("the graph has no input")
    return OnnxSummary(metadata=metadata, input_shape=inputs[0][2], input_type=inputs[0][1],
                       output_shapes=[o[2] for o in outputs], op_types=frozenset(op_types),
                       initializer_types=initializer_types)


def read_onnx(path):
    # type: (str) -> OnnxSummary
    """Metadata, I/O shapes and operator types of an ONNX file; ModelError if it is not one."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (IOError, OSError) as exc:
        raise ModelError("cannot read model file %s (%s); check the path and its permissions"
                         % (path, exc.strerror or exc))
    try:
        return _scan_onnx(memoryview(data))
    except ValueError as exc:
        raise ModelError("%s is not a valid ONNX model (%s, %d bytes); export it again or copy the "
                         "whole file" % (path, exc, len(data)))


# --- checks shared by the backends ----------------------------------------------------------------

def _shape_text(shape):
    return "(%s)" % ", ".join("?" if d is None else str(d) for d in shape)


def check_input_shape(path, input_shape):
    # type: (str, Sequence[Dim]) -> Tuple[int, int]
    """(H, W) of a (1, 3, H, W) input with fixed numbers; ModelError for any other input."""
    dims = list(input_shape)
    sizes = [d for d in dims if isinstance(d, int) and d > 0]
    if len(dims) != 4 or len(sizes) != 4 or sizes[0] != 1 or sizes[1] != 3:
        raise ModelError("%s: the network input has shape %s, expected (1, 3, H, W) with fixed numbers; "
                         "export the model again with batch 1, 3 colour channels and a fixed image size"
                         % (path, _shape_text(dims)))
    return sizes[2], sizes[3]


def check_network_shapes(path, input_shape, output_shapes):
    # type: (str, Sequence[Dim], Sequence[Sequence[Dim]]) -> Tuple[int, int]
    """(H, W) of a (1, 3, H, W) input; ModelError for any other input or a non-3-D first output."""
    hw = check_input_shape(path, input_shape)
    if not output_shapes:
        raise ModelError("%s: the network has no output; export a YOLOv5 detection model" % path)
    first = list(output_shapes[0])
    if len(first) != 3:
        raise ModelError("%s: the network output has shape %s, expected 3-D (1, N, 5+classes) or "
                         "(1, 4+classes, N); export a YOLOv5 detection model" % (path, _shape_text(first)))
    return hw


def resolve_model_info(model_path, metadata, input_hw, sidecar_candidates=()):
    # type: (str, Optional[Dict[str, str]], Tuple[int, int], Sequence[str]) -> ModelInfo
    """ModelInfo from a sidecar YAML (first found among the model and ``sidecar_candidates``),
    else from the ONNX metadata; its input size must equal the network's."""
    info = None
    source = ""
    for candidate in [model_path] + list(sidecar_candidates):
        info = load_sidecar(candidate)
        if info is not None:
            source = sidecar_path(candidate)
            break
    if info is None:
        if not metadata or not any(key in metadata for key in ("names", "imgsz")):
            raise ModelError("%s has no class-name metadata and there is no %s beside it; export the model "
                             "with hanja_live.train.export or write that YAML file (names, imgsz, stride)"
                             % (model_path, sidecar_path(model_path)))
        info = model_info_from_mapping(dict(metadata), model_path)
        source = model_path
    if tuple(info.input_hw) != tuple(input_hw):
        raise ModelError("%s gives imgsz [%d, %d] but the network input is 1x3x%dx%d; correct imgsz "
                         "or export the model again"
                         % (source, info.input_hw[0], info.input_hw[1], input_hw[0], input_hw[1]))
    return info


def one_line(text):
    # type: (object) -> str
    """Library messages (ONNX Runtime, TensorRT) span lines; errors here are one line."""
    return " ".join(str(text).split())


# --- which backend -------------------------------------------------------------------------------

def tensorrt_status():
    # type: () -> Tuple[bool, str]
    """(usable, why): TensorRT's Python module and a CUDA device through pycuda."""
    try:
        import tensorrt as trt
    except (ImportError, OSError) as exc:
        missing = isinstance(exc, ImportError) and getattr(exc, "name", None) == "tensorrt"
        return False, "TensorRT not installed" if missing else "TensorRT fails to import (%s)" % one_line(exc)
    if not hasattr(trt, "Builder"):
        # tensorrt-stubs alone leaves an importable, empty namespace package
        return False, "TensorRT not installed (only its type stubs are)"
    try:
        import pycuda.driver as cuda
    except (ImportError, OSError) as exc:
        return False, "TensorRT found but pycuda is missing (%s)" % one_line(exc)
    try:
        cuda.init()
        count = cuda.Device.count()
    except cuda.Error as exc:
        return False, "TensorRT found but CUDA does not start (%s)" % one_line(exc)
    if count < 1:
        return False, "TensorRT found but no CUDA GPU"
    return True, "TensorRT and pycuda found"


def _describe(backend, model_path, reason):
    detail = "; ".join(part for part in (backend.detail, reason) if part)
    h, w = backend.info.input_hw
    return "backend: %s %s (%s), %s, model %s, input %dx%d (WxH)" % (
        backend.name, getattr(backend, "version", ""), detail, backend.precision, model_path, w, h)


def load_backend(model_path, backend="auto", precision="auto", engine_dir=None, workspace_mb=1024,
                 log=print, calib_dir=None, threads=0):
    # type: (str, str, str, Optional[str], int, Callable[[str], object], Optional[str], int) -> Backend
    """Load ``model_path`` (.onnx, or a TensorRT .engine) into the backend asked for.

    backend:   "auto" (TensorRT when it and pycuda work, else ONNX Runtime), "tensorrt", "onnxruntime"
    precision: "auto" | "fp16" | "fp32" | "int8": precision of a TensorRT engine built now; ONNX
               Runtime runs the model in the precision it was exported in
    calib_dir: folder of sample frames for INT8 calibration (TensorRT, precision "int8")
    threads:   CPU threads of one ONNX Runtime inference (0: one per core)
    """
    if backend not in BACKENDS:
        raise ConfigError("backend must be one of %s, got %r" % (", ".join(BACKENDS), backend))
    if precision not in REQUESTED_PRECISIONS:
        raise ConfigError("precision must be one of %s, got %r" % (", ".join(REQUESTED_PRECISIONS), precision))
    if os.path.isdir(model_path):
        raise ModelError("%s is a folder, not a model; pass the .onnx file in it with --model" % model_path)
    if not os.path.isfile(model_path):
        raise ModelError("model file not found: %s \u2014 train/export one (see README) or pass --model"
                         % model_path)
    if model_path.lower().endswith((".pt", ".pth")):
        raise ModelError("%s is a PyTorch checkpoint, which this app does not run; export it with "
                         "python -m hanja_live.train.export --weights %s and pass the .onnx file"
                         % (model_path, model_path))
    is_engine = model_path.lower().endswith((".engine", ".plan", ".trt"))
    if backend == "onnxruntime":
        if is_engine:
            raise ModelError("%s is a TensorRT engine, which ONNX Runtime cannot run; pass the .onnx model "
                             "or use --backend tensorrt" % model_path)
        chosen, reason = "onnxruntime", "backend set to onnxruntime"
    else:
        usable, why = tensorrt_status()
        if backend == "tensorrt" and not usable:
            raise HanjaLiveError("cannot use TensorRT: %s; %s" % (why, TENSORRT_HOWTO))
        if is_engine and not usable:
            raise HanjaLiveError("%s is a TensorRT engine but %s; pass the .onnx model to run it with "
                                 "ONNX Runtime, or install TensorRT: %s" % (model_path, why, TENSORRT_HOWTO))
        chosen = "tensorrt" if usable else "onnxruntime"
        reason = "backend set to tensorrt" if backend == "tensorrt" else why
    if chosen == "tensorrt":
        from .tensorrt_backend import TRTWrapper
        loaded = TRTWrapper(model_path, precision=precision, engine_dir=engine_dir,
                            workspace_mb=workspace_mb, calib_dir=calib_dir, log=log)  # type: Backend
    else:
        from .onnxruntime_backend import OnnxRuntimeBackend
        loaded = OnnxRuntimeBackend(model_path, precision=precision, engine_dir=engine_dir,
                                    workspace_mb=workspace_mb, threads=threads)
        if precision not in ("auto", loaded.precision):
            reason += "; precision %s applies to TensorRT engines only" % precision
    log(_describe(loaded, model_path, reason))
    return loaded
