"""TensorRT backend for Jetson boards: ``TRTWrapper`` loads a cached engine, or builds one from
the ONNX model the first time, and runs it through pycuda with buffers allocated once.

Written for TensorRT 8.2 (JetPack 4.6, Python 3.6) through 10.x. The two ways of addressing
engine tensors (binding indices up to 8.4, tensor names from 8.5 and alone in 10) are two small
classes, one of which is picked once per engine by what the engine object offers.
"""

import os
from typing import TYPE_CHECKING, Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from ..errors import HanjaLiveError, ModelError
from .base import Backend
from .engine_builder import (QDQ_OPS, build_engine, choose_precision, fast_fp16_for_compute_capability,
                             import_tensorrt, shared_logger)
from .engine_cache import (calibration_cache_path, engine_path, model_digest, onnx_sibling,
                           parse_engine_name, timing_cache_path)
from .loader import check_input_shape, check_network_shapes, one_line, read_onnx, resolve_model_info

if TYPE_CHECKING:
    import tensorrt
    from typing_extensions import Protocol

    class LegacyEngine(Protocol):
        """ICudaEngine as TensorRT 8.2-8.4 offers it: the binding-index API that 10.x removed."""

        @property
        def num_bindings(self) -> int: ...

        def get_binding_name(self, index: int) -> str: ...

        def get_binding_shape(self, index: int) -> tensorrt.Dims: ...

        def get_binding_dtype(self, index: int) -> tensorrt.DataType: ...

        def binding_is_input(self, index: int) -> bool: ...

    class LegacyContext(Protocol):
        """IExecutionContext of TensorRT 8.2-8.4."""

        def execute_async_v2(self, bindings: List[int], stream_handle: int) -> bool: ...

Log = Callable[[str], object]

PYCUDA_MISSING = ("pycuda is missing (%s); TensorRT needs it: on a Jetson run ./run.sh --setup, which builds "
                  "it with JetPack's CUDA, or use --backend onnxruntime")


class TensorSpec(NamedTuple):
    name: str
    shape: Tuple[int, ...]
    dtype: np.dtype
    is_input: bool


def _dims(dims):
    # type: (tensorrt.Dims) -> Tuple[int, ...]
    return tuple(int(dims[i]) for i in range(len(dims)))


class BindingIO(object):
    """TensorRT 8.2-8.4: tensors by binding index; execute_async_v2 takes every device address."""

    def __init__(self, engine, trt):
        # type: (LegacyEngine, Any) -> None
        self._engine = engine
        self._nptype = trt.nptype
        self._bindings = []  # type: List[int]

    def tensors(self):
        # type: () -> List[TensorSpec]
        engine = self._engine
        return [TensorSpec(engine.get_binding_name(i), _dims(engine.get_binding_shape(i)),
                           np.dtype(self._nptype(engine.get_binding_dtype(i))), bool(engine.binding_is_input(i)))
                for i in range(engine.num_bindings)]

    def bind(self, context, addresses):
        # type: (Any, Dict[str, int]) -> None
        names = [self._engine.get_binding_name(i) for i in range(self._engine.num_bindings)]
        self._bindings = [int(addresses[name]) for name in names]

    def execute(self, context, stream_handle):
        # type: (LegacyContext, int) -> bool
        return bool(context.execute_async_v2(self._bindings, stream_handle))


class TensorNameIO(object):
    """TensorRT >= 8.5: tensors by name; addresses set once on the context, execute_async_v3."""

    def __init__(self, engine, trt):
        # type: (tensorrt.ICudaEngine, Any) -> None
        self._engine = engine
        self._nptype = trt.nptype
        self._input_mode = trt.TensorIOMode.INPUT

    def tensors(self):
        # type: () -> List[TensorSpec]
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        return [TensorSpec(name, _dims(engine.get_tensor_shape(name)),
                           np.dtype(self._nptype(engine.get_tensor_dtype(name))),
                           engine.get_tensor_mode(name) == self._input_mode)
                for name in names]

    def bind(self, context, addresses):
        # type: (tensorrt.IExecutionContext, Dict[str, int]) -> None
        for name, address in addresses.items():
            if not context.set_tensor_address(name, address):
                raise HanjaLiveError("TensorRT refused the buffer of tensor %r; rebuild the engine (delete "
                                     "the .engine file)" % name)

    def execute(self, context, stream_handle):
        # type: (tensorrt.IExecutionContext, int) -> bool
        return bool(context.execute_async_v3(stream_handle))


def select_io(engine):
    # type: (Any) -> Union[type, Any]
    """The I/O class for ``engine``, by what it offers (never by version string)."""
    return TensorNameIO if hasattr(engine, "num_io_tensors") else BindingIO


def import_pycuda():
    # type: () -> Any
    try:
        import pycuda.driver as cuda
    except (ImportError, OSError) as exc:
        raise HanjaLiveError(PYCUDA_MISSING % one_line(exc))
    return cuda


class PrimaryContext(object):
    """The GPU's primary CUDA context, which TensorRT's own CUDA calls use too, made current only
    inside ``with``: any thread can then run inference, unlike with pycuda.autoinit, which ties a
    new context to the importing thread."""

    def __init__(self, cuda, device=0):
        # type: (Any, int) -> None
        self._cuda = cuda
        try:
            cuda.init()
            self.device = cuda.Device(device)
            if hasattr(self.device, "retain_primary_context"):
                self._context = self.device.retain_primary_context()
            else:
                # make_context() leaves the new context current; it is pushed again on each use
                self._context = self.device.make_context()
                cuda.Context.pop()
        except cuda.Error as exc:
            raise HanjaLiveError("cannot open CUDA device %d (%s); check the GPU driver (tegrastats or "
                                 "nvidia-smi) and that no other program holds the GPU" % (device, one_line(exc)))

    @property
    def name(self):
        # type: () -> str
        return str(self.device.name())

    @property
    def compute_capability(self):
        # type: () -> Tuple[int, int]
        major, minor = self.device.compute_capability()
        return int(major), int(minor)

    def __enter__(self):
        self._context.push()
        return self

    def __exit__(self, *exc):
        self._cuda.Context.pop()
        return False

    def release(self):
        # type: () -> None
        if self._context is not None:
            self._context.detach()
            self._context = None


class TRTWrapper(Backend):
    """A TensorRT engine with page-locked host buffers and device buffers made once.

    ``engine_or_onnx_path``: an .onnx model (its engine is cached under engine_cache's name,
    built first if missing) or an .engine file (rebuilt from the .onnx beside it, or from
    ``onnx_path``, when this TensorRT or GPU cannot load it).
    """

    name = "tensorrt"

    def __init__(self, engine_or_onnx_path, precision="auto", engine_dir=None, workspace_mb=1024, calib_dir=None,
                 onnx_path=None, device=0, log=print):
        # type: (str, str, Optional[str], int, Optional[str], Optional[str], int, Log) -> None
        import_tensorrt()
        import tensorrt as trt

        cuda = import_pycuda()
        self.version = str(trt.__version__)
        self._cuda = cuda
        self._log = log
        self._device_buffers = []  # type: List[Any]
        self._context = None  # type: Optional[tensorrt.IExecutionContext]
        self._engine = None  # type: Optional[tensorrt.ICudaEngine]
        self._runtime = None  # type: Optional[tensorrt.Runtime]
        self._ctx = PrimaryContext(cuda, device)  # type: Optional[PrimaryContext]
        try:
            with self._ctx:
                self._runtime = trt.Runtime(shared_logger())
                engine, model_path, onnx_file = self._obtain_engine(
                    engine_or_onnx_path, onnx_path, precision, engine_dir, workspace_mb, calib_dir)
                self._engine = engine
                self._setup(trt, engine, model_path, onnx_file)
        except cuda.Error as exc:
            self.close()
            raise HanjaLiveError("CUDA error while loading %s: %s; close other GPU programs or reboot the board"
                                 % (engine_or_onnx_path, one_line(exc)))
        except Exception:
            self.close()
            raise

    # -- loading ----------------------------------------------------------------------------------

    def _deserialize(self, path):
        # type: (str) -> Optional[tensorrt.ICudaEngine]
        """The engine in ``path``, or None when it is absent or TensorRT rejects it (another
        TensorRT version or GPU; TensorRT prints why)."""
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            data = f.read()
        assert self._runtime is not None
        try:
            engine = self._runtime.deserialize_cuda_engine(data)  # type: Optional[tensorrt.ICudaEngine]
        except (RuntimeError, TypeError, ValueError) as exc:
            self._log("TensorRT cannot load %s: %s" % (path, one_line(exc)))
            return None
        return engine

    def _platform(self, ask_builder):
        # type: (bool) -> Tuple[bool, bool]
        """(fast FP16, fast INT8) as TensorRT's builder reports them, else by compute capability
        (also when ``ask_builder`` is false: a builder costs time and memory on a Nano)."""
        import tensorrt as trt

        fast_fp16 = fast_int8 = None
        if ask_builder:
            builder = trt.Builder(shared_logger())
            fast_fp16 = getattr(builder, "platform_has_fast_fp16", None)
            fast_int8 = getattr(builder, "platform_has_fast_int8", None)
            del builder
        assert self._ctx is not None
        capability = self._ctx.compute_capability
        if fast_fp16 is None:
            fast_fp16 = fast_fp16_for_compute_capability(capability)
        if fast_int8 is None:
            fast_int8 = capability >= (6, 1)
        return bool(fast_fp16), bool(fast_int8)

    def _obtain_engine(self, path, onnx_path, precision, engine_dir, workspace_mb, calib_dir):
        # type: (str, Optional[str], str, Optional[str], int, Optional[str]) -> Tuple[tensorrt.ICudaEngine, str, Optional[str]]
        """(engine, the path the user gave, the ONNX model if known); sets precision and detail."""
        assert self._ctx is not None
        gpu = self._ctx.name
        if path.lower().endswith(".onnx"):
            return self._engine_from_onnx(path, path, gpu, precision, engine_dir, workspace_mb, calib_dir)
        onnx_file = onnx_path or onnx_sibling(path)
        engine = self._deserialize(path)
        if engine is not None:
            parsed = parse_engine_name(path)
            if parsed and parsed.digest and onnx_file and model_digest(onnx_file) != parsed.digest:
                self._log("warning: %s was built from another version of %s; running it as asked (pass "
                          "the .onnx model to build an engine of the current one)" % (path, onnx_file))
            self.precision = parsed.precision if parsed else "unknown"
            self.detail = "engine %s" % path
            return engine, path, onnx_file
        if onnx_file is None:
            raise ModelError("%s does not load with TensorRT %s on %s (built by another TensorRT version "
                             "or GPU, or damaged) and no .onnx model lies beside it to rebuild from; pass "
                             "the .onnx model instead" % (path, self.version, gpu))
        self._log("%s does not load with TensorRT %s on %s; building a new engine from %s"
                  % (path, self.version, gpu, onnx_file))
        return self._engine_from_onnx(onnx_file, path, gpu, precision, engine_dir, workspace_mb, calib_dir)

    def _engine_from_onnx(self, onnx_file, path, gpu, precision, engine_dir, workspace_mb, calib_dir):
        # type: (str, str, str, str, Optional[str], int, Optional[str]) -> Tuple[tensorrt.ICudaEngine, str, Optional[str]]
        """The cached engine for ``onnx_file`` on this GPU and TensorRT, built first if missing."""
        summary = read_onnx(onnx_file)
        check_input_shape(onnx_file, summary.input_shape)
        fast_fp16, fast_int8 = self._platform(ask_builder=precision in ("auto", "int8"))
        digest = model_digest(onnx_file)
        calib_cache = calibration_cache_path(onnx_file, digest, self.version, engine_dir)
        chosen, why = choose_precision(precision, fast_fp16, fast_int8, bool(QDQ_OPS & summary.op_types),
                                       calib_dir, calib_cache)
        target = engine_path(onnx_file, digest, gpu, self.version, chosen, engine_dir)
        engine = self._deserialize(target)
        how = "cached"
        if engine is None:
            self._log("no TensorRT %s engine for %s on %s (%s) yet: building %s"
                      % (chosen, onnx_file, gpu, why, target))
            build_engine(onnx_file, target, precision=chosen, workspace_mb=workspace_mb, calib_dir=calib_dir,
                         calib_cache=calib_cache, timing_cache=timing_cache_path(onnx_file, gpu, self.version,
                                                                                 engine_dir),
                         log=self._log)
            engine = self._deserialize(target)
            if engine is None:
                raise HanjaLiveError("TensorRT built %s but cannot load it; close other GPU programs and start "
                                     "again" % target)
            how = "built now"
        self.precision = chosen
        self.detail = "engine %s, %s, %s" % (target, how, why)
        self._engine_file = target
        return engine, path, onnx_file

    def _setup(self, trt, engine, model_path, onnx_file):
        # type: (Any, tensorrt.ICudaEngine, str, Optional[str]) -> None
        cuda = self._cuda
        self._io = select_io(engine)(engine, trt)
        specs = self._io.tensors()  # type: List[TensorSpec]
        inputs = [s for s in specs if s.is_input]
        outputs = [s for s in specs if not s.is_input]
        if len(inputs) != 1:
            raise ModelError("%s has %d inputs (%s); expected one image input"
                             % (model_path, len(inputs), ", ".join(s.name for s in inputs)))
        h, w = check_network_shapes(model_path, inputs[0].shape, [s.shape for s in outputs])
        for spec in outputs:
            if any(d < 1 for d in spec.shape):
                raise ModelError("%s: output %s has a dynamic shape %s; export the model with fixed shapes"
                                 % (model_path, spec.name, spec.shape))

        parsed = parse_engine_name(model_path)
        sidecars = [p for p in (onnx_file, parsed and os.path.join(os.path.dirname(model_path),
                                                                   parsed.stem + ".onnx")) if p]
        metadata = read_onnx(onnx_file).metadata if onnx_file else {}
        self.info = resolve_model_info(onnx_file or model_path, metadata, (h, w), [model_path] + sidecars)

        self._context = engine.create_execution_context()
        if self._context is None:
            raise HanjaLiveError("not enough GPU memory to run %s; close other GPU programs" % model_path)
        self._stream = cuda.Stream()
        addresses = {}  # type: Dict[str, int]
        self._outputs = []  # type: List[np.ndarray]
        self._device_outputs = []  # type: List[Any]
        for spec in specs:
            host = cuda.pagelocked_empty(spec.shape, spec.dtype)
            host.fill(0)
            device = cuda.mem_alloc(host.nbytes)
            self._device_buffers.append(device)
            addresses[spec.name] = int(device)
            if spec.is_input:
                self.input = host
                self._device_input = device
            else:
                self._outputs.append(host)
                self._device_outputs.append(device)
        self._io.bind(self._context, addresses)
        if not hasattr(self, "_engine_file"):
            self._engine_file = model_path

    # -- running ----------------------------------------------------------------------------------

    def infer(self):
        # type: () -> List[np.ndarray]
        cuda = self._cuda
        if self._ctx is None or self._context is None:
            raise HanjaLiveError("the TensorRT backend was closed; load the model again")
        try:
            with self._ctx:
                cuda.memcpy_htod_async(self._device_input, self.input, self._stream)
                ok = self._io.execute(self._context, self._stream.handle)
                for host, device in zip(self._outputs, self._device_outputs):
                    cuda.memcpy_dtoh_async(host, device, self._stream)
                self._stream.synchronize()
        except cuda.Error as exc:
            raise HanjaLiveError("CUDA error while running %s: %s; restart the app (reboot the board if it "
                                 "happens again)" % (self._engine_file, one_line(exc)))
        if not ok:
            raise HanjaLiveError("TensorRT could not run %s (its error is printed above); delete that file so "
                                 "that it is built again" % self._engine_file)
        return self._outputs

    def close(self):
        # type: () -> None
        if self._ctx is None:
            return
        try:
            with self._ctx:
                # TensorRT objects and device memory are released while their context is current
                self._context = None
                self._engine = None
                self._runtime = None
                for buffer in self._device_buffers:
                    buffer.free()
                self._device_buffers = []
                self._stream = None
        finally:
            self._ctx.release()
            self._ctx = None
