"""Where built TensorRT engines, timing caches and INT8 calibration caches are kept.

A serialized engine holds one version of the model's weights and runs only on the GPU model
and the exact TensorRT version that built it, so all three go into the file name together with
the precision:

    <stem>.<model digest>.<gpu-slug>.trt<version>.<fp16|fp32|int8>.engine

A board upgraded to a new JetPack, a model file copied to another board, or a model replaced
by a retrained one under the same name (``git pull``) then finds no matching engine and builds
a fresh one, instead of failing to deserialize a stale one or running the old weights.
"""

import hashlib
import os
import re
from typing import NamedTuple, Optional

PRECISIONS = ("fp16", "fp32", "int8")

DIGEST_CHARS = 8  # hex digits of the model file's SHA-256 kept in cache names

# the digest is optional so that engines named before it was added still parse
_ENGINE_NAME = re.compile(
    r"^(?P<stem>.+?)(?:\.(?P<digest>[0-9a-f]{%d}))?\.(?P<gpu>[a-z0-9-]+)\.trt(?P<version>\d+(?:\.\d+)*)"
    r"\.(?P<precision>fp16|fp32|int8)\.engine$" % DIGEST_CHARS
)

_DIGEST = re.compile(r"^[0-9a-f]{%d}$" % DIGEST_CHARS)


class EngineName(NamedTuple):
    stem: str  # the model's file name without extension
    digest: Optional[str]  # model_digest() of the model it was built from; None in older names
    gpu: str  # gpu_slug() of the GPU that built it
    version: str  # TensorRT version, e.g. "8.2.1.8"
    precision: str  # one of PRECISIONS


def model_digest(model_path):
    # type: (str) -> str
    """The first DIGEST_CHARS hex digits of the SHA-256 of the model file's bytes."""
    sha = hashlib.sha256()
    with open(model_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:DIGEST_CHARS]


def _check_digest(digest):
    if not _DIGEST.match(str(digest)):
        raise ValueError("model digest must be %d lowercase hex digits (model_digest()), got %r"
                         % (DIGEST_CHARS, digest))


def gpu_slug(gpu_name):
    # type: (str) -> str
    """'NVIDIA Tegra X1' -> 'nvidia-tegra-x1'; safe in a file name on every filesystem."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(gpu_name).lower()).strip("-")
    return slug or "unknown-gpu"


def version_tag(version):
    # type: (str) -> str
    """'8.2.1.8' -> '8.2.1.8'; '10.3.0.post1' -> '10.3.0' (the numeric release only)."""
    match = re.match(r"\d+(?:\.\d+)*", str(version).strip())
    if match is None:
        raise ValueError("TensorRT version %r has no numeric release" % (version,))
    return match.group(0)


def _check_precision(precision):
    if precision not in PRECISIONS:
        raise ValueError("engine precision must be one of %s, got %r" % (", ".join(PRECISIONS), precision))


def _base(model_path, engine_dir):
    stem = os.path.splitext(os.path.basename(model_path))[0]
    folder = engine_dir if engine_dir else os.path.dirname(model_path)
    return os.path.join(folder, stem)


def engine_path(model_path, digest, gpu_name, trt_version, precision, engine_dir=None):
    # type: (str, str, str, str, str, Optional[str]) -> str
    """The cached engine for ``model_path`` (whose model_digest() is ``digest``) beside it, or
    in ``engine_dir`` when given."""
    _check_precision(precision)
    _check_digest(digest)
    return "%s.%s.%s.trt%s.%s.engine" % (_base(model_path, engine_dir), digest, gpu_slug(gpu_name),
                                         version_tag(trt_version), precision)


def timing_cache_path(model_path, gpu_name, trt_version, engine_dir=None):
    # type: (str, str, str, Optional[str]) -> str
    """Timing cache shared by all precisions of one model on one GPU and TensorRT version."""
    return "%s.%s.trt%s.timing.cache" % (_base(model_path, engine_dir), gpu_slug(gpu_name),
                                         version_tag(trt_version))


def calibration_cache_path(model_path, digest, trt_version, engine_dir=None):
    # type: (str, str, str, Optional[str]) -> str
    """INT8 calibration scales; they depend on the model's weights and TensorRT, not on the GPU."""
    _check_digest(digest)
    return "%s.%s.trt%s.int8.calib" % (_base(model_path, engine_dir), digest, version_tag(trt_version))


def parse_engine_name(path):
    # type: (str) -> Optional[EngineName]
    """The parts of a name made by engine_path(), or None for any other file name."""
    match = _ENGINE_NAME.match(os.path.basename(path))
    if match is None:
        return None
    return EngineName(match.group("stem"), match.group("digest"), match.group("gpu"),
                      match.group("version"), match.group("precision"))


def onnx_sibling(path):
    # type: (str) -> Optional[str]
    """The ONNX model an engine was built from, when it lies beside the engine.

    ``x.1a2b3c4d.nvidia-tegra-x1.trt8.2.1.8.fp16.engine`` and ``x.engine`` both point to ``x.onnx``.
    """
    parsed = parse_engine_name(path)
    stem = parsed.stem if parsed else os.path.splitext(os.path.basename(path))[0]
    candidate = os.path.join(os.path.dirname(path), stem + ".onnx")
    return candidate if os.path.isfile(candidate) else None
