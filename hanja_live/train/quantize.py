"""INT8 copy of an exported detector: ONNX Runtime static quantization in QDQ form.

    python -m hanja_live.train.quantize make-calib --out calib/images [--count 300 --seed 7]
    python -m hanja_live.train.quantize quantize --model models/M.onnx --calib calib/images \\
        --out models/M.int8.onnx [--method percentile] [--keep-float outputs] [--symmetric]

make-calib renders the calibration images with the data set generator (training ink sources,
fixed seed, so the same command makes the same files).

quantize feeds each calibration image through the app's own letterbox (hanja_live.letterbox,
decoded as hanja_live.sources.images decodes it), records the range of every activation, and
writes a QDQ model: QuantizeLinear / DequantizeLinear pairs around float operators, int8
weights with one scale per output channel. ONNX Runtime fuses the pairs into integer kernels
on the CPU (QLinearConv, QLinearSigmoid, QLinearMul, QLinearConcat). The opset is raised to
13, the first with per-channel scales and the last TensorRT 8.2 parses.

Two flavours, because the two runtimes want different activations:
* default, for ONNX Runtime on x86: uint8 activations with a zero point (u8 x s8 is what its
  VNNI / AMX kernels take);
* ``--symmetric``, for TensorRT's explicit INT8 (Xavier, Orin): int8 activations, zero point
  0, the only kind TensorRT accepts. ONNX Runtime runs it on the x86 CPU too, but slowly
  (measured 2.3x slower than FP32: it has no fast s8 x s8 convolution there).

The Detect head's decoding tail (DFL softmax, box arithmetic, the output concat of pixel boxes
with 0..1 scores) always stays in float: one 8-bit scale cannot hold both. By default the
head's last convolutions (box and class maps, 1x1, about 1 % of the work) stay float too
(``--keep-float outputs``; ``tail`` quantizes them, ``none`` quantizes everything).
Measured on our held-out test set (FP32 mAP50 0.836, mAP50-95 0.630), uint8 per channel:
percentile 0.832 / 0.627 with the head outputs float, 0.833 / 0.624 without; entropy 0.834 /
0.626 and 0.831 / 0.621; minmax 0.831 / 0.618; entropy per tensor 0.830 / 0.614; symmetric
int8 (percentile, outputs float) 0.831 / 0.623. Hence the defaults: percentile, per channel,
head outputs float.

The tensor ranges go to a calibration cache (ONNX Runtime's JSON format, ranges only; default
``<calib folder's parent>/<model stem>.<method>.json``), tagged with the model's SHA-256 and
the image list: a later run with the same model, method and images reuses it without
calibrating again (both flavours read the same ranges), and any other model recalibrates.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from hanja_live.errors import ConfigError, HanjaLiveError, ModelError
from hanja_live.train.export import sha256_of

METHODS = ("entropy", "percentile", "minmax")
KEEP_FLOAT = ("tail", "outputs")
CALIB_SEED = 7
CALIB_COUNT = 300
QDQ_OPSET = 13  # per-channel QuantizeLinear needs 13; TensorRT 8.2 parses up to 13
CACHE_TAG = "hanja_live"
STRIDE_IMAGES = 25  # images whose activations are held in memory at once while calibrating


# ------------------------------------------------------------------ calibration images

def make_calibration_images(out, count=CALIB_COUNT, seed=CALIB_SEED, long_side=640, quality=80,
                            log=print):
    """Render ``count`` images of the training distribution to ``out``/calib_NNNNNN.jpg."""
    import cv2

    from hanja_live.train.dataset import generate_one

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stale = [p for p in out.glob("calib_*.jpg") if int(p.stem.split("_")[1]) >= count]
    for p in stale:
        p.unlink()
    t0 = time.monotonic()
    for index in range(count):
        # split "train": the ink sources of training, with this seed's own images
        image = generate_one(seed, "train", index, long_side)[0]
        path = out / f"calib_{index:06d}.jpg"
        if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, quality]):
            raise HanjaLiveError(f"cannot write {path}; check that {out} is writable")
        if (index + 1) % 50 == 0 or index + 1 == count:
            log(f"make-calib: {index + 1}/{count} images, {time.monotonic() - t0:.0f} s")
    size = sum(p.stat().st_size for p in out.glob("calib_*.jpg"))
    log(f"make-calib: {count} images in {out}, {size / 1e6:.1f} MB")
    return out


# ------------------------------------------------------------------ calibration reader

def calibration_images(folder, count=None):
    """Image paths of ``folder`` in the app's order (natural sort), the first ``count``."""
    from hanja_live.sources.images import list_images

    if not Path(folder).is_dir():
        raise ConfigError(f"--calib {folder} is not a folder; make the images with "
                          f"python -m hanja_live.train.quantize make-calib --out {folder}")
    paths = list_images(str(folder))
    if not paths:
        raise ConfigError(f"--calib {folder} holds no images; make them with "
                          f"python -m hanja_live.train.quantize make-calib --out {folder}")
    return paths[:count] if count else paths


def _reader_class():
    from onnxruntime.quantization import CalibrationDataReader

    class LetterboxReader(CalibrationDataReader):
        """Feeds each image letterboxed exactly as the app feeds a frame: (1, 3, H, W) float32."""

        def __init__(self, paths, input_name, input_hw, stride):
            from hanja_live.letterbox import Letterbox

            self.paths = list(paths)
            self.input_name = input_name
            self.buffer = np.zeros((1, 3) + tuple(input_hw), np.float32)
            self.letterbox = Letterbox(self.buffer, stride=stride)
            self.start, self.stop = 0, len(self.paths)
            self.index = 0
            self.fed = 0

        def __len__(self):
            return len(self.paths)

        def set_range(self, start_index, end_index):
            self.start, self.stop = start_index, min(end_index, len(self.paths))
            self.index = self.start

        def get_next(self):
            from hanja_live.sources.images import decode_image

            if self.index >= self.stop:
                return None
            path = self.paths[self.index]
            self.index += 1
            image = decode_image(path)
            if image is None:
                raise ConfigError(f"{path} is not a readable image; delete it or remake the "
                                  f"calibration set")
            self.letterbox(image)
            self.fed += 1
            # the calibrator keeps the feeds of a whole stride: each gets its own array
            return {self.input_name: self.buffer.copy()}

        def rewind(self):
            self.set_range(0, len(self.paths))

    return LetterboxReader


# ------------------------------------------------------------------ graph helpers

def detect_prefix(model):
    """'/model.24/': the name prefix ultralytics' exporter gives the Detect head's nodes."""
    producer = {o: n for n in model.graph.node for o in n.output}
    last = producer.get(model.graph.output[0].name)
    found = re.match(r"^(/model\.\d+/)", last.name) if last is not None else None
    if not found:
        raise ModelError("cannot find the Detect head (nodes named /model.N/...) in the model; "
                         "export it with hanja_live.train.export, or quantize everything with "
                         "--keep-float none")
    return found.group(1)


def float_nodes(model, keep_float="tail"):
    """Names of the nodes left in float: the Detect head's decoding tail (and its last convs)."""
    if keep_float in (None, "none"):
        return []
    prefix = detect_prefix(model)
    # the head's branch layers: /model.24/cv2.0/cv2.0.1/conv/Conv, ... and the last convs
    # /model.24/cv2.0/cv2.0.2/Conv; everything else under the prefix decodes the maps
    branch = re.compile(re.escape(prefix) + r"(cv2|cv3)\.\d+/\1\.\d+\.\d+/")
    tail = {n.name for n in model.graph.node
            if n.name.startswith(prefix) and not branch.match(n.name)}
    if keep_float == "outputs":
        consumers = {}
        for n in model.graph.node:
            for i in n.input:
                consumers.setdefault(i, set()).add(n.name)
        tail |= {n.name for n in model.graph.node
                 if n.op_type == "Conv" and n.name not in tail
                 and any(consumers.get(o, set()) & tail for o in n.output)}
    elif keep_float != "tail":
        raise ConfigError(f"--keep-float {keep_float}: choose one of tail, outputs, none")
    return sorted(tail)


def raise_opset(model, opset=QDQ_OPSET):
    """The model at ``opset`` (at least): per-channel QDQ needs opset 13."""
    current = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if current >= opset:
        return model
    return onnx.version_converter.convert_version(model, opset)


def drop_unused_domains(model):
    """Remove opset imports no node uses (ONNX Runtime's pre-processing adds nine)."""
    used = {n.domain for n in model.graph.node} | {""}
    keep = [o for o in model.opset_import if o.domain in used or o.domain == "ai.onnx"]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    return model


def _cache_matches(cache, tag):
    try:
        stored = json.loads(Path(cache).read_text(encoding="utf-8")).get(CACHE_TAG)
    except (OSError, ValueError):
        return False
    return stored == tag


def _tag_cache(cache, tag):
    """Add our tag; drop the histograms (quantization reads only each tensor's range)."""
    data = json.loads(Path(cache).read_text(encoding="utf-8"))
    for entry in data.get("data", {}).values():
        for key in ("hist", "hist_edges", "bins"):
            entry.pop(key, None)
    data[CACHE_TAG] = tag
    Path(cache).write_text(json.dumps(data, indent=0) + "\n", encoding="utf-8")
    os.chmod(cache, 0o644)  # ONNX Runtime writes it through mkstemp, readable by its owner only


def quantized_op_counts(model):
    """{op type: count} of the model's nodes."""
    counts = {}
    for n in model.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


# ------------------------------------------------------------------ quantization

def quantize(model_path, calib, out, method="percentile", symmetric=False, per_channel=True,
             keep_float="outputs", cache=None, count=None, log=print):
    """Write the QDQ INT8 copy of ``model_path`` to ``out`` (+ sidecar YAML); returns metadata."""
    import onnxruntime
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from hanja_live.train.export import save_model, static_input_hw

    if method not in METHODS:
        raise ConfigError(f"--method {method}: choose one of {', '.join(METHODS)}")
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ConfigError(f"--model {model_path} does not exist; export one with "
                          f"python -m hanja_live.train.export")
    source = onnx.load(str(model_path))
    meta = {p.key: p.value for p in source.metadata_props}
    if meta.get("precision", "fp32") != "fp32" or "names" not in meta:
        raise ConfigError(f"--model {model_path}: quantize the float32 model written by "
                          f"hanja_live.train.export (this one is {meta.get('precision', 'unknown')})")
    names = json.loads(meta["names"])
    stride = int(meta.get("stride", 32))
    input_hw = static_input_hw(source)
    input_name = [i.name for i in source.graph.input
                  if i.name not in {t.name for t in source.graph.initializer}][0]
    paths = calibration_images(calib, count)
    float_nodes(source, keep_float)  # fails early on a model without ultralytics' head names
    cache = Path(cache) if cache else Path(calib).parent / f"{model_path.stem}.{method}.json"
    tag = {"model": model_path.name, "model_sha256": sha256_of(model_path), "method": method,
           "images": len(paths),
           "first_image": Path(paths[0]).name, "last_image": Path(paths[-1]).name}
    if cache.is_file() and not _cache_matches(cache, tag):
        log(f"quantize: {cache} belongs to another model or image set; calibrating again")
        cache.unlink()
    reused = cache.is_file()

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hanja_quant_") as tmp:
        raised = Path(tmp) / "opset.onnx"
        onnx.save(raise_opset(source), str(raised))
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(raised), str(prepared), skip_symbolic_shape=True)
        excluded = float_nodes(onnx.load(str(prepared)), keep_float)  # names after folding
        reader = _reader_class()(paths, input_name, input_hw, stride)
        stride_images = min(STRIDE_IMAGES, len(paths))
        while len(paths) % stride_images:  # ONNX Runtime wants whole strides
            stride_images -= 1
        extra = {
            "ActivationSymmetric": bool(symmetric),
            "WeightSymmetric": True,
            "CalibStridedMinMax": stride_images,
        }
        if method == "percentile":
            extra["CalibPercentile"] = 99.999
        if not reused:
            log(f"quantize: calibrating on {len(paths)} images from {calib} ({method}), "
                f"{len(excluded)} head nodes stay float")
        raw = Path(tmp) / "int8.onnx"
        quantize_static(
            str(prepared), str(raw), None if reused else reader,
            quant_format=QuantFormat.QDQ, per_channel=per_channel, reduce_range=False,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
            calibrate_method={"entropy": CalibrationMethod.Entropy,
                              "percentile": CalibrationMethod.Percentile,
                              "minmax": CalibrationMethod.MinMax}[method],
            extra_options=extra, calibration_cache_path=str(cache))
        if not reused:
            _tag_cache(cache, tag)
        quantized = drop_unused_domains(onnx.load(str(raw)))
    counts = quantized_op_counts(quantized)
    provenance = {k: v for k, v in meta.items()
                  if k not in ("names", "imgsz", "stride", "layout", "task", "precision")}
    provenance.update({
        "int8_from": model_path.name,
        "int8_from_sha256": tag["model_sha256"],
        "int8_format": "QDQ",
        "int8_activations": "int8 symmetric" if symmetric else "uint8 asymmetric",
        "int8_weights": "int8 symmetric " + ("per channel" if per_channel else "per tensor"),
        "int8_calibration": f"{method}, {len(paths)} images of {calib}",
        "opset": str(max(o.version for o in quantized.opset_import if o.domain in ("", "ai.onnx"))),
        "int8_float_nodes": str(len(excluded)),
        "onnxruntime_version": onnxruntime.__version__,
    })
    meta_out = save_model(quantized, out, names, stride, "int8", provenance)
    log(f"quantize: {out} ({counts.get('QuantizeLinear', 0)} QuantizeLinear, "
        f"{counts.get('DequantizeLinear', 0)} DequantizeLinear; calibration "
        f"{'reused from' if reused else 'written to'} {cache}) in {time.monotonic() - t0:.0f} s")
    return {"onnx": str(out), "cache": str(cache), "cache_reused": reused, "metadata": meta_out}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m hanja_live.train.quantize",
                                description="INT8 (QDQ) copy of an exported detector, calibrated "
                                            "on the calibration images")
    sub = p.add_subparsers(dest="command", required=True)
    mk = sub.add_parser("make-calib", help="render the calibration images")
    mk.add_argument("--out", default="calib/images", help="folder to write (default calib/images)")
    mk.add_argument("--count", type=int, default=CALIB_COUNT)
    mk.add_argument("--seed", type=int, default=CALIB_SEED)
    mk.add_argument("--size", type=int, default=640, help="long side in pixels (default 640)")
    mk.add_argument("--quality", type=int, default=80, help="JPEG quality (default 80)")
    q = sub.add_parser("quantize", help="write the INT8 QDQ model")
    q.add_argument("--model", required=True, help="float32 ONNX from hanja_live.train.export")
    q.add_argument("--calib", default="calib/images", help="calibration image folder")
    q.add_argument("--out", required=True, help="INT8 ONNX to write (a .yaml goes beside it)")
    q.add_argument("--method", choices=METHODS, default="percentile",
                   help="range calibration (default percentile, 99.999 %%)")
    q.add_argument("--symmetric", action="store_true",
                   help="int8 activations with zero point 0: the flavour for TensorRT")
    q.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor")
    q.add_argument("--keep-float", choices=KEEP_FLOAT + ("none",), default="outputs",
                   help="head parts left in float (default outputs: the last convs and the "
                        "decoding tail; tail: the decoding only)")
    q.add_argument("--cache", help="calibration cache JSON (default calib/<stem>.<method>.json)")
    q.add_argument("--count", type=int, help="use only the first N calibration images")
    args = p.parse_args(argv)
    try:
        if args.command == "make-calib":
            make_calibration_images(args.out, args.count, args.seed, args.size, args.quality)
        else:
            quantize(args.model, args.calib, args.out, args.method, args.symmetric,
                     not args.per_tensor, args.keep_float, args.cache, args.count)
    except HanjaLiveError as exc:
        sys.exit(f"quantize: {exc}")


if __name__ == "__main__":
    main()
