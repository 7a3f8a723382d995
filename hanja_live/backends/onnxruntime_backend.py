"""ONNX Runtime backend: the fallback wherever TensorRT is absent (x86 PCs, CI) and a
cross-check for TensorRT engines on a Jetson."""

import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import ConfigError, HanjaLiveError, ModelError
from .base import Backend
from .loader import (ONNX_FLOAT16, ONNX_INT8, ONNX_UINT8, ONNXRUNTIME_HOWTO, check_network_shapes, one_line,
                     read_onnx, resolve_model_info)

PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise HanjaLiveError("ONNX Runtime is not installed: " + ONNXRUNTIME_HOWTO)
    return onnxruntime


def pick_providers(available):
    # type: (Sequence[str]) -> List[str]
    """TensorRT, CUDA, CPU: those of them this ONNX Runtime build offers, fastest first."""
    chosen = [p for p in PROVIDER_ORDER if p in available]
    if not chosen:
        raise HanjaLiveError("this ONNX Runtime offers none of %s (only %s); reinstall it: %s"
                             % (", ".join(PROVIDER_ORDER), ", ".join(available) or "nothing", ONNXRUNTIME_HOWTO))
    return chosen


def precision_of(input_dtype, initializer_types, op_types):
    # type: (np.dtype, Dict[int, int], frozenset) -> str
    """What the model computes in, from its input and weight types (ONNX Runtime runs it as stored)."""
    if np.dtype(input_dtype) == np.float16:
        return "fp16"
    if "QuantizeLinear" in op_types and (initializer_types.get(ONNX_INT8) or initializer_types.get(ONNX_UINT8)):
        return "int8"
    if initializer_types.get(ONNX_FLOAT16, 0) > initializer_types.get(1, 0):
        return "fp16"
    return "fp32"


def ort_errors(ort):
    """The exception classes ONNX Runtime raises (they derive from Exception only)."""
    state = getattr(getattr(ort, "capi", None), "onnxruntime_pybind11_state", None)
    found = [v for v in vars(state).values()
             if isinstance(v, type) and issubclass(v, Exception)] if state is not None else []
    return tuple(found) + (RuntimeError, ValueError)


class OnnxRuntimeBackend(Backend):
    """One InferenceSession; input and outputs bound once through IO binding when shapes are static."""

    name = "onnxruntime"

    def __init__(self, model_path, precision="auto", engine_dir=None, workspace_mb=1024, providers=None,
                 threads=0):
        # type: (str, str, Optional[str], int, Optional[Sequence[str]], int) -> None
        """threads: CPU threads of one inference (0: ONNX Runtime's choice, one per core). Several
        detectors working side by side each take 1, so they do not fight over the cores."""
        ort = import_onnxruntime()
        self.version = ort.__version__
        self._errors = ort_errors(ort)
        summary = read_onnx(model_path)

        names = list(providers) if providers else pick_providers(ort.get_available_providers())
        trt_fp16 = precision in ("auto", "fp16")
        options = []  # type: List[Dict[str, object]]
        for provider in names:
            if provider == "TensorrtExecutionProvider":
                cache = engine_dir or os.path.dirname(os.path.abspath(model_path))
                try:
                    if not os.path.isdir(cache):
                        os.makedirs(cache)
                except OSError as exc:
                    raise HanjaLiveError("cannot create the engine folder %s (%s); set model.engine_dir to a "
                                         "writable folder" % (cache, exc.strerror or exc))
                options.append({"trt_fp16_enable": trt_fp16, "trt_engine_cache_enable": True,
                                "trt_engine_cache_path": cache,
                                "trt_max_workspace_size": int(workspace_mb) << 20})
            else:
                options.append({})
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads < 0:
            raise ConfigError("model.threads must be 0 (one per core) or more, got %d" % threads)
        session_options.intra_op_num_threads = int(threads)
        try:
            self._session = ort.InferenceSession(model_path, sess_options=session_options,
                                                 providers=names, provider_options=options)
        except self._errors as exc:
            raise ModelError("ONNX Runtime cannot load %s: %s; export the model again"
                             % (model_path, one_line(exc)))

        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        if len(inputs) != 1:
            raise ModelError("%s has %d inputs (%s); expected one image input"
                             % (model_path, len(inputs), ", ".join(i.name for i in inputs)))
        h, w = check_network_shapes(model_path, inputs[0].shape, [o.shape for o in outputs])
        dtype = _NUMPY_TYPES.get(inputs[0].type)
        if dtype is None:
            raise ModelError("%s: input type %s is not supported; export with float32 or float16 input"
                             % (model_path, inputs[0].type))
        metadata = self._session.get_modelmeta().custom_metadata_map
        self.info = resolve_model_info(model_path, metadata, (h, w))
        self.input = np.zeros((1, 3, h, w), dtype=dtype)

        active = self._session.get_providers()
        self.detail = ", ".join(active)
        self.on_cpu = list(active) == ["CPUExecutionProvider"]
        if trt_fp16 and active and active[0] == "TensorrtExecutionProvider":
            self.precision = "fp16"
        else:
            self.precision = precision_of(np.dtype(dtype), summary.initializer_types, summary.op_types)

        self._input_name = inputs[0].name
        self._output_names = [o.name for o in outputs]
        self._feed = {self._input_name: self.input}
        self._outputs = []  # type: List[np.ndarray]
        self._binding = self._bind(ort, outputs)

    def _bind(self, ort, outputs):
        """IO binding over preallocated arrays, so a frame allocates nothing; None when an output
        has a symbolic size or type this ONNX Runtime cannot bind."""
        if not (hasattr(self._session, "io_binding") and hasattr(ort, "OrtValue")):
            return None
        arrays = []
        for out in outputs:
            dtype = _NUMPY_TYPES.get(out.type)
            if dtype is None or not all(isinstance(d, int) and d > 0 for d in out.shape):
                return None
            arrays.append(np.zeros(out.shape, dtype=dtype))
        binding = self._session.io_binding()
        # OrtValues made from NumPy on the CPU share the array's memory: filling self.input is the feed
        self._values = [ort.OrtValue.ortvalue_from_numpy(self.input)]
        binding.bind_ortvalue_input(self._input_name, self._values[0])
        for out, array in zip(outputs, arrays):
            value = ort.OrtValue.ortvalue_from_numpy(array)
            self._values.append(value)
            binding.bind_ortvalue_output(out.name, value)
        self._outputs = arrays
        return binding

    def infer(self):
        # type: () -> List[np.ndarray]
        try:
            if self._binding is not None:
                self._session.run_with_iobinding(self._binding)
                return self._outputs
            return self._session.run(self._output_names, self._feed)
        except self._errors as exc:
            raise HanjaLiveError("ONNX Runtime failed while running the model: %s" % one_line(exc))

    def close(self):
        # type: () -> None
        self._binding = None
        self._values = []
