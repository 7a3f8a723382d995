"""Build a serialized TensorRT engine from an ONNX model (FP32, FP16 or INT8).

The TensorRT calls are kept thin, in ``build_engine`` and the three small factories for classes
that must derive from TensorRT's; everything else (precision choice, workspace setting, progress
lines, calibration images, atomic writes) is plain Python that the tests run without TensorRT.
Written against TensorRT 8.2 (JetPack 4.6) and 10.x; features are picked by what the objects
offer, never by the version string.
"""

import contextlib
import os
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, cast

import numpy as np

from ..errors import ConfigError, HanjaLiveError, ModelError
from .engine_cache import PRECISIONS
from .loader import check_input_shape, one_line, read_onnx

if TYPE_CHECKING:
    import tensorrt
    from typing_extensions import Protocol

    class LegacyBuilderConfig(Protocol):
        """IBuilderConfig of TensorRT 8.2, before set_memory_pool_limit (8.3) replaced this."""

        max_workspace_size: int

TENSORRT_MISSING = ("TensorRT is not installed: it comes with JetPack on Jetson; on x86 install TensorRT "
                    "from NVIDIA, or use --backend onnxruntime")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
QDQ_OPS = frozenset(("QuantizeLinear", "DequantizeLinear"))
ONNX_UINT8 = 2  # TensorProto.DataType
# SM 5.3 (Nano, TX1), 6.0 (P100), 6.2 (TX2) and every GPU from Volta (7.0) on run FP16 at speed
_FAST_FP16_SM = ((5, 3), (6, 0), (6, 2))

Log = Callable[[str], object]


def import_tensorrt():
    # type: () -> Any
    """The tensorrt module, or a HanjaLiveError saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        if getattr(exc, "name", None) == "tensorrt":
            raise HanjaLiveError(TENSORRT_MISSING)
        raise HanjaLiveError("%s (import failed: %s)" % (TENSORRT_MISSING, one_line(exc)))
    except OSError as exc:
        raise HanjaLiveError("%s (import failed: %s)" % (TENSORRT_MISSING, one_line(exc)))
    if not hasattr(trt, "Builder"):
        # the tensorrt-stubs package alone leaves an importable, empty namespace package
        raise HanjaLiveError(TENSORRT_MISSING)
    return trt


_LOGGERS = {}  # type: Dict[int, Any]


def shared_logger():
    # type: () -> tensorrt.ILogger
    """One trt.Logger per process: TensorRT 8 treats the logger as a singleton and wants the
    builder and every runtime to share it. Warnings and errors go to stderr."""
    import tensorrt as trt

    key = id(trt)
    if key not in _LOGGERS:
        _LOGGERS[key] = trt.Logger(trt.Logger.WARNING)
    return cast("tensorrt.ILogger", _LOGGERS[key])


# --- plain logic ---------------------------------------------------------------------------------

def format_elapsed(seconds):
    # type: (float) -> str
    """65 -> '1m 05s'; 3725 -> '1h 02m 05s'."""
    total = int(max(0.0, seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return "%dh %02dm %02ds" % (hours, minutes, secs)
    if minutes:
        return "%dm %02ds" % (minutes, secs)
    return "%ds" % secs


def fast_fp16_for_compute_capability(capability):
    # type: (Tuple[int, int]) -> bool
    major, minor = capability
    return major >= 7 or (major, minor) in _FAST_FP16_SM


def choose_precision(requested, fast_fp16, fast_int8=False, has_qdq=False, calib_dir=None, calib_cache=None):
    # type: (str, bool, bool, bool, Optional[str], Optional[str]) -> Tuple[str, str]
    """(precision of the engine to build, why) for a requested "auto" | "fp16" | "fp32" | "int8"."""
    if requested not in ("auto",) + PRECISIONS:
        raise ConfigError("precision must be one of auto, %s, got %r" % (", ".join(PRECISIONS), requested))
    if has_qdq:
        # TensorRT refuses Q/DQ layers in a network built without the INT8 flag
        return "int8", "the model holds Q/DQ (explicitly quantized) layers"
    if requested == "int8":
        if not fast_int8:
            raise ConfigError("this GPU has no fast INT8 (TensorRT's platform_has_fast_int8 is false); "
                              "use precision fp16 or auto")
        has_cache = bool(calib_cache) and os.path.isfile(str(calib_cache))
        if not calib_dir and not has_cache:
            raise ConfigError("INT8 needs calibration images: pass calib_dir (a folder of a few hundred "
                              "camera frames) or export a Q/DQ-quantized ONNX model")
        return "int8", "requested, calibrated on %s" % ("the cached scales" if has_cache else calib_dir)
    if requested == "fp16":
        return "fp16", "requested" if fast_fp16 else "requested, although this GPU has no fast FP16"
    if requested == "fp32":
        return "fp32", "requested"
    if fast_fp16:
        return "fp16", "GPU has fast FP16"
    return "fp32", "GPU has no fast FP16"


def network_flags(trt):
    # type: (Any) -> int
    """EXPLICIT_BATCH where the enum still has it (TensorRT 8 needs it for ONNX; 10 ignores it)."""
    flag = getattr(getattr(trt, "NetworkDefinitionCreationFlag", None), "EXPLICIT_BATCH", None)
    if flag is None:
        return 0
    return 1 << int(flag)


def set_workspace(config, trt, nbytes):
    # type: (tensorrt.IBuilderConfig, Any, int) -> str
    """Bound the builder's scratch memory; returns which call did it."""
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, nbytes)
        return "set_memory_pool_limit"
    cast("LegacyBuilderConfig", config).max_workspace_size = nbytes
    return "max_workspace_size"


def write_atomic(path, data):
    # type: (str, Any) -> None
    """Write ``data`` (bytes or a buffer) to ``path`` so that no reader ever sees half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        if not os.path.isdir(folder):
            os.makedirs(folder)
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except (IOError, OSError) as exc:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        raise HanjaLiveError("cannot write %s (%s); make %s writable or set model.engine_dir to a "
                             "writable folder" % (path, exc.strerror or exc, folder))


class ProgressTracker(object):
    """Turns TensorRT's progress callbacks into a few log lines.

    Each top-level phase is logged when it starts and ends; step progress inside any phase at
    most once per ``interval_s``. Thread-safe: TensorRT may call from its own threads.
    """

    def __init__(self, log, interval_s=10.0, clock=time.monotonic):
        # type: (Log, float, Callable[[], float]) -> None
        self._log = log
        self._interval = interval_s
        self._clock = clock
        self._start = clock()
        self._last = self._start
        self._phases = {}  # type: Dict[str, Tuple[Optional[str], int]]
        self._lock = threading.Lock()

    def _path(self, name):
        parts = [name]
        parent = self._phases.get(name, (None, 0))[0]
        while parent is not None and len(parts) < 8:
            parts.append(parent)
            parent = self._phases.get(parent, (None, 0))[0]
        return " > ".join(reversed(parts))

    def _emit(self, text, now):
        self._last = now
        self._log("TensorRT build: %s, %s elapsed" % (text, format_elapsed(now - self._start)))

    def phase_start(self, phase_name, parent_phase, num_steps):
        # type: (str, Optional[str], int) -> None
        with self._lock:
            self._phases[phase_name] = (parent_phase, int(num_steps))
            if parent_phase is None:
                self._emit("%s started (%d steps)" % (phase_name, num_steps), self._clock())

    def step_complete(self, phase_name, step):
        # type: (str, int) -> bool
        with self._lock:
            now = self._clock()
            if now - self._last >= self._interval:
                total = self._phases.get(phase_name, (None, 0))[1]
                self._emit("%s %d/%d" % (self._path(phase_name), step + 1, total), now)
        return True  # False would cancel the build

    def phase_finish(self, phase_name):
        # type: (str) -> None
        with self._lock:
            parent = self._phases.pop(phase_name, (None, 0))[0]
            if parent is None:
                self._emit("%s finished" % phase_name, self._clock())


class Heartbeat(object):
    """Logs 'LABEL: 2m 10s elapsed' every ``interval_s`` from a thread, for TensorRT versions
    without a progress monitor, so a 20-minute build does not look like a hang."""

    def __init__(self, log, label="building TensorRT engine", interval_s=10.0, clock=time.monotonic):
        # type: (Log, str, float, Callable[[], float]) -> None
        self._log = log
        self._label = label
        self._interval = interval_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread = None  # type: Optional[threading.Thread]
        self._start = 0.0

    def start(self):
        # type: () -> Heartbeat
        self._start = self._clock()
        self._thread = threading.Thread(target=self._run, name="trt-build-heartbeat")
        self._thread.daemon = True
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self._interval):
            self._log("%s: %s elapsed" % (self._label, format_elapsed(self._clock() - self._start)))

    def stop(self):
        # type: () -> None
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def list_calibration_images(calib_dir, limit=500):
    # type: (str, int) -> List[str]
    """Image files in ``calib_dir`` (sorted), thinned evenly to at most ``limit``."""
    if not os.path.isdir(calib_dir):
        raise ConfigError("INT8 calibration folder not found: %s; point calib_dir at a folder of camera "
                          "frames" % calib_dir)
    names = sorted(n for n in os.listdir(calib_dir) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise ConfigError("no images (%s) in the INT8 calibration folder %s; put a few hundred camera "
                          "frames there" % (", ".join(IMAGE_EXTENSIONS), calib_dir))
    if len(names) > limit:
        keep = np.linspace(0, len(names) - 1, num=limit).round().astype(int)
        names = [names[i] for i in keep]
    return [os.path.join(calib_dir, n) for n in names]


class CalibrationBatches(object):
    """The calibration images, each letterboxed into one (1, 3, H, W) buffer exactly as the live
    preprocessor does it; iterating yields that buffer once per readable image."""

    def __init__(self, paths, buffer, stride=32, fill=None):
        # type: (Sequence[str], np.ndarray, int, Optional[Callable[[np.ndarray], object]]) -> None
        self.paths = list(paths)
        self.buffer = buffer
        if fill is None:
            from ..letterbox import Letterbox
            fill = Letterbox(buffer, stride=stride)
        self._fill = fill
        self.used = 0
        self.unreadable = []  # type: List[str]

    def __iter__(self):
        # type: () -> Iterator[np.ndarray]
        import cv2

        for path in self.paths:
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                self.unreadable.append(path)
                continue
            self._fill(image)
            self.used += 1
            yield self.buffer
        if not self.used:
            raise ConfigError("none of the %d calibration files could be read as images (first: %s); "
                              "check the calib_dir folder" % (len(self.paths), self.paths[0] if self.paths else "-"))


# --- TensorRT-derived classes (made only where TensorRT is) --------------------------------------

def make_progress_monitor(tracker):
    # type: (ProgressTracker) -> tensorrt.IProgressMonitor
    """A trt.IProgressMonitor (TensorRT >= 10) that forwards to ``tracker``."""
    import tensorrt as trt

    class ProgressMonitor(trt.IProgressMonitor):
        def __init__(self):
            # type: () -> None
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            # type: (str, str, int) -> None
            tracker.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):
            # type: (str, int) -> bool
            return tracker.step_complete(phase_name, step)

        def phase_finish(self, phase_name):
            # type: (str) -> None
            tracker.phase_finish(phase_name)

    return ProgressMonitor()


def make_entropy_calibrator(cuda, batches, cache_path, log):
    # type: (Any, Optional[CalibrationBatches], Optional[str], Log) -> Any
    """A trt.IInt8EntropyCalibrator2 feeding ``batches`` through one device buffer, with a cache
    file so that later builds skip calibration."""
    import tensorrt as trt

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            # type: () -> None
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.error = None  # type: Optional[Exception]
            self._batches = iter(batches) if batches is not None else iter(())
            self._device = cuda.mem_alloc(batches.buffer.nbytes) if batches is not None else None
            self._count = 0

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            # exceptions must not cross into TensorRT's C++: keep them and end the data instead
            device = self._device
            if device is None:
                return None
            try:
                batch = next(self._batches)
                cuda.memcpy_htod(device, batch)
            except StopIteration:
                return None
            except (HanjaLiveError, cuda.Error) as exc:
                self.error = exc
                return None
            self._count += 1
            if self._count % 50 == 0:
                log("INT8 calibration: %d images" % self._count)
            return [int(device)]

        def read_calibration_cache(self):
            if cache_path and os.path.isfile(cache_path):
                with open(cache_path, "rb") as f:
                    return f.read()
            return None

        def free(self):
            if self._device is not None:
                self._device.free()
                self._device = None

        def write_calibration_cache(self, cache):
            if cache_path:
                write_atomic(cache_path, bytes(cache))
                log("INT8 calibration cache written to %s" % cache_path)

    return EntropyCalibrator()


# --- the build -----------------------------------------------------------------------------------

def check_onnx_for_tensorrt(onnx_path):
    # type: (str) -> Tuple[Any, Tuple[int, int]]
    """(summary, (H, W)) of ``onnx_path`` (ModelError if it is not an ONNX file with one
    fixed-size image input), refusing what TensorRT's parser would: its explicit INT8 takes Q/DQ
    pairs with int8 values and zero point 0 only, and stops at a uint8 QuantizeLinear (ONNX
    Runtime's x86 format)."""
    summary = read_onnx(onnx_path)
    input_hw = check_input_shape(onnx_path, summary.input_shape)
    if QDQ_OPS & summary.op_types and summary.initializer_types.get(ONNX_UINT8, 0):
        raise ModelError("%s is quantized with uint8 activations, ONNX Runtime's format for x86 CPUs, "
                         "which TensorRT cannot parse; build from the symmetric INT8 model "
                         "(models/hanja_yolov5n.int8sym.onnx, made by python -m "
                         "hanja_live.train.quantize quantize --symmetric) or from the FP32 model "
                         "with --int8 --calib calib/images" % onnx_path)
    return summary, input_hw


def _parse_onnx(builder, logger, onnx_path):
    # type: (tensorrt.Builder, tensorrt.ILogger, str) -> Tuple[tensorrt.INetworkDefinition, tensorrt.OnnxParser]
    import tensorrt as trt

    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as f:
        data = f.read()
    if not parser.parse(data, onnx_path):
        errors = [one_line(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ModelError("TensorRT cannot parse %s: %s; export the model again with a lower opset or "
                         "simplify it" % (onnx_path, " | ".join(errors) or "no detail given"))
    # the parser must outlive the network on TensorRT 8
    return network, parser


def _load_timing_cache(config, path, log):
    # type: (tensorrt.IBuilderConfig, Optional[str], Log) -> Optional[tensorrt.ITimingCache]
    """Attach a timing cache (from ``path`` when it exists); None where TensorRT has none."""
    if not path or not hasattr(config, "create_timing_cache"):
        return None
    data = b""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            data = f.read()
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, False):
        log("ignoring timing cache %s: made by another GPU or TensorRT" % path)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)
    return cache


def build_engine(onnx_path, engine_path, precision="fp16", workspace_mb=1024, calib_dir=None, calib_cache=None,
                 timing_cache=None, log=print):
    # type: (str, str, str, int, Optional[str], Optional[str], Optional[str], Log) -> str
    """Build ``onnx_path`` into a serialized engine at ``engine_path`` and return that path.

    precision "fp16" | "fp32" | "int8"; INT8 uses the model's Q/DQ layers when it has them, else
    entropy calibration on the images in ``calib_dir`` (scales cached in ``calib_cache``).
    workspace_mb bounds the builder's scratch memory (a Nano shares 4 GB with the CPU).
    """
    if precision not in PRECISIONS:
        raise ConfigError("engine precision must be one of %s, got %r" % (", ".join(PRECISIONS), precision))
    # the file is checked first: a wrong one is worth knowing about on any machine
    summary, (input_h, input_w) = check_onnx_for_tensorrt(onnx_path)
    has_qdq = bool(QDQ_OPS & summary.op_types)
    import_tensorrt()
    import tensorrt as trt

    logger = shared_logger()
    builder = trt.Builder(logger)
    network, parser = _parse_onnx(builder, logger, onnx_path)
    config = builder.create_builder_config()
    set_workspace(config, trt, int(workspace_mb) << 20)
    fast_fp16 = bool(getattr(builder, "platform_has_fast_fp16", True))
    if precision == "fp16" or (precision == "int8" and fast_fp16):
        # INT8 builds keep FP16 for the layers that have no INT8 kernel
        config.set_flag(trt.BuilderFlag.FP16)

    with contextlib.ExitStack() as stack:
        calibrator = None
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            if not has_qdq:
                calibrator = _attach_calibrator(config, stack, (input_h, input_w), summary.metadata,
                                                calib_dir, calib_cache, log)
        cache = _load_timing_cache(config, timing_cache, log)
        monitor = None  # TensorRT keeps no reference: it must stay alive here during the build
        if hasattr(trt, "IProgressMonitor") and hasattr(config, "progress_monitor"):
            monitor = make_progress_monitor(ProgressTracker(log))
            config.progress_monitor = monitor
        else:
            stack.enter_context(Heartbeat(log))
        log("building a TensorRT %s engine from %s (workspace %d MB); this takes 10-30 minutes on a Jetson "
            "Nano, once: later starts load %s" % (precision, onnx_path, workspace_mb, engine_path))
        serialized = builder.build_serialized_network(network, config)  # type: Optional[tensorrt.IHostMemory]
        stack.close()
        del monitor, parser
        if calibrator is not None and calibrator.error is not None:
            raise calibrator.error
        if serialized is None:
            raise HanjaLiveError("TensorRT could not build an engine from %s (its errors are printed above); "
                                 "try precision fp32 or a larger workspace_mb" % onnx_path)
        write_atomic(engine_path, serialized)
        if cache is not None and timing_cache:
            write_atomic(timing_cache, config.get_timing_cache().serialize())
    return engine_path


def _attach_calibrator(config, stack, input_hw, metadata, calib_dir, calib_cache, log):
    # type: (tensorrt.IBuilderConfig, contextlib.ExitStack, Tuple[int, int], Dict[str, str], Optional[str], Optional[str], Log) -> Any
    """Entropy calibration for a model without Q/DQ layers; the CUDA context it needs stays
    current until ``stack`` closes."""
    if not hasattr(config, "int8_calibrator"):
        raise ConfigError("this TensorRT has no implicit INT8 calibration; export a Q/DQ-quantized "
                          "ONNX model or use precision fp16")
    batches = None
    if calib_dir:
        buffer = np.zeros((1, 3) + tuple(input_hw), dtype=np.float32)
        batches = CalibrationBatches(list_calibration_images(calib_dir), buffer, stride=_stride_of(metadata))
    elif not (calib_cache and os.path.isfile(calib_cache)):
        raise ConfigError("INT8 needs calibration images: pass calib_dir (a folder of camera frames) "
                          "or export a Q/DQ-quantized ONNX model")
    from .tensorrt_backend import PrimaryContext, import_pycuda

    cuda = import_pycuda()
    context = PrimaryContext(cuda)
    stack.callback(context.release)
    stack.enter_context(context)
    calibrator = make_entropy_calibrator(cuda, batches, calib_cache, log)
    stack.callback(calibrator.free)
    config.int8_calibrator = calibrator
    return calibrator


def _stride_of(metadata):
    # type: (Dict[str, str]) -> int
    try:
        return int(metadata.get("stride", 32))
    except ValueError:
        return 32
