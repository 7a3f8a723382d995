"""Trained weights -> ONNX the app (and TensorRT 8.2 on JetPack 4.6) can load.

    python -m hanja_live.train.export --weights runs/NAME/weights/best.pt --imgsz 416 \\
        --out models/NAME.onnx [--fp16-out models/NAME.fp16.onnx]

* ultralytics exports a STATIC 1x3xHxW graph at opset 12 (TensorRT 8.2 parses up to 13), no
  NMS inside; onnxslim simplifies it when installed.
* the IR version is lowered to the oldest one that carries the opset, for old parsers.
* ``metadata_props`` is rewritten to what hanja_live.model_info reads (names as a JSON list,
  imgsz "[H, W]", stride, layout) plus provenance, and the same keys go to ``<out stem>.yaml``.
* a network pruned by hanja_live.train.prune carries its pruning record into the metadata
  (pruned_ratio, pruned_macs_kept, ...).
* ``--fp16-out`` adds a float16 copy (float16 input and output too), checked in onnxruntime
  against the float32 model on a rendered scene: the class scores of every candidate, and the
  boxes of the candidates the app would keep.
"""

import argparse
import datetime
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import yaml

from hanja_live.errors import HanjaLiveError, ModelError
from hanja_live.model_info import LAYOUTS, model_info_from_mapping, sidecar_path

DEFAULT_OPSET = 12
# float16 vs float32 on the same input: scores within FP16_SCORE_ATOL + FP16_RTOL * |score|,
# kept boxes' coordinates within FP16_BOX_ATOL + FP16_RTOL * the box's longer side
FP16_SCORE_ATOL = 0.01
FP16_BOX_ATOL = 0.5  # pixels of network input
FP16_RTOL = 0.02
# Boxes are compared only for candidates that float32 scores at least this (the app's default
# threshold): the boxes of the rest can be hundreds of pixels, carry float16's rounding of that
# size (measured: up to 10 px on real frames, also in earlier models), and are never drawn.
FP16_CHECK_CONF = 0.25


def static_input_hw(model):
    """(H, W) of the single 1x3xHxW input; ModelError if any dimension is not a fixed number."""
    graph_inputs = [i for i in model.graph.input
                    if i.name not in {t.name for t in model.graph.initializer}]
    if len(graph_inputs) != 1:
        raise ModelError(f"the model has {len(graph_inputs)} inputs, the app feeds one image; "
                         f"export a detection model")
    dims = graph_inputs[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(shape) != 4 or None in shape or shape[0] != 1 or shape[1] != 3:
        raise ModelError(f"input shape {shape} is not a fixed 1x3xHxW; export with dynamic=False "
                         f"and batch 1")
    return shape[2], shape[3]


def output_layout(model, n_classes):
    """'anchor_free' for (1, 4+nc, N), 'anchor_based' for (1, N, 5+nc), from the first output."""
    dims = model.graph.output[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(shape) == 3 and shape[1] == 4 + n_classes and shape[2] != 5 + n_classes:
        return LAYOUTS[1]
    if len(shape) == 3 and shape[2] == 5 + n_classes and shape[1] != 4 + n_classes:
        return LAYOUTS[0]
    raise ModelError(f"output shape {shape} fits neither (1, 4+{n_classes}, N) nor "
                     f"(1, N, 5+{n_classes}); export without NMS, with the data set's "
                     f"{n_classes} classes")


def lower_ir_version(model):
    """Oldest IR version that holds the model's opsets: parsers built on older ONNX accept it."""
    # ignore_unknown: contrib domains (com.microsoft) have no IR version of their own
    oldest = onnx.helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)
    model.ir_version = min(model.ir_version, oldest)


def rewrite_metadata(model, names, stride, precision, provenance=None):
    """Replace ``metadata_props`` with the keys hanja_live.model_info reads; returns them."""
    h, w = static_input_hw(model)
    meta = {
        "names": json.dumps(list(names), ensure_ascii=False),
        "imgsz": json.dumps([h, w]),
        "stride": str(int(stride)),
        "layout": output_layout(model, len(names)),
        "task": "detect",
        "precision": precision,
        # ultralytics' AutoBackend needs these two to load the model (the bench's baseline)
        "batch": "1",
        "channels": str(int(model.graph.input[0].type.tensor_type.shape.dim[1].dim_value)),
    }
    meta.update({k: str(v) for k, v in (provenance or {}).items()})
    onnx.helper.set_model_props(model, meta)  # replaces any earlier metadata_props
    model_info_from_mapping(meta, "export")  # the app must accept what was written
    return meta


def write_sidecar(onnx_path, meta):
    """``<model>.yaml`` beside the model: the same keys, with lists and numbers as YAML types."""
    data = dict(meta)
    data["names"] = json.loads(meta["names"])
    data["imgsz"] = json.loads(meta["imgsz"])
    data["stride"] = int(meta["stride"])
    for key in ("batch", "channels"):
        data[key] = int(meta[key])
    path = sidecar_path(str(onnx_path))
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"# written by hanja_live.train.export for {Path(onnx_path).name}\n")
        yaml.safe_dump(data, f, allow_unicode=True, sort_keys=False)
    return path


def run_onnxruntime(model, feed):
    """Outputs of ``model`` (path, or ModelProto) on one input array, onnxruntime CPU provider."""
    import onnxruntime as ort

    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    sess = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = np.float16 if "float16" in inp.type else np.float32
    return [o.astype(np.float32) for o in sess.run(None, {inp.name: feed.astype(dtype)})]


def save_model(model, out, names, stride, precision, provenance=None, simplify=False):
    """Simplify (optional), lower IR, write metadata, check, save ``out`` and its sidecar."""
    if simplify:
        try:
            import onnxslim
        except ImportError:
            print("export: onnxslim is not installed, the graph stays as exported")
        else:
            model = onnxslim.slim(model)
    lower_ir_version(model)
    meta = rewrite_metadata(model, names, stride, precision, provenance)
    onnx.checker.check_model(model, full_check=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    write_sidecar(out, meta)
    return meta


def fp16_gap(ref, got, layout):
    """(largest |float32 - float16| over what the app uses, within tolerance?) for the detection
    output: every class score, and the boxes (cx, cy, w, h) of candidates float32 scores at least
    FP16_CHECK_CONF, each coordinate within FP16_BOX_ATOL + FP16_RTOL * the box's longer side.
    The gap mixes units: scores, and pixels of network input."""
    a, b = np.asarray(ref, np.float64)[0], np.asarray(got, np.float64)[0]
    if layout == LAYOUTS[1]:  # anchor_free (4+nc, N) -> (N, 4+nc)
        a, b = a.T, b.T
        conf = a[:, 4:].max(axis=1)
    else:  # anchor_based (N, 5+nc): objectness times the best class score
        conf = a[:, 4] * a[:, 5:].max(axis=1)
    keep = conf >= FP16_CHECK_CONF
    scores = np.abs(a[:, 4:] - b[:, 4:])
    boxes = np.abs(a[keep, :4] - b[keep, :4])
    side = np.abs(a[keep, 2:4]).max(axis=1, keepdims=True)
    ok = (np.all(scores <= FP16_SCORE_ATOL + FP16_RTOL * np.abs(a[:, 4:]))
          and np.all(boxes <= FP16_BOX_ATOL + FP16_RTOL * side))
    gap = max(float(scores.max()) if scores.size else 0.0, float(boxes.max()) if boxes.size else 0.0)
    return gap, bool(ok)


def rendered_scene(h, w, stride):
    """(1, 3, h, w) float32: a synthetic test scene with written characters, as the app feeds it."""
    from hanja_live.letterbox import Letterbox
    from hanja_live.train.compose import make_sample

    image = make_sample(np.random.default_rng(0), "test", (h, w), layout="scattered")[0]
    feed = np.zeros((1, 3, h, w), np.float32)
    Letterbox(feed, stride=stride)(image)
    return feed


def convert_fp16(src, dst):
    """float16 copy of the ONNX model ``src`` at ``dst``; checks its outputs against ``src``."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    meta = {p.key: p.value for p in model.metadata_props}
    names = json.loads(meta["names"])
    provenance = {k: v for k, v in meta.items()
                  if k not in ("names", "imgsz", "stride", "layout", "task", "precision")}
    h, w = static_input_hw(model)
    feed = rendered_scene(h, w, int(meta["stride"]))
    ref = run_onnxruntime(model, feed)
    half = convert_float_to_float16(model, keep_io_types=False)
    got = run_onnxruntime(half, feed)
    for a, b in zip(ref, got):
        if a.shape != b.shape:
            raise ModelError(f"{dst}: float16 output shape {b.shape} is not float32's {a.shape}; "
                             f"keep the float32 model")
    # the detection output is the first (output_layout reads it); exports have no other
    worst, ok = fp16_gap(ref[0], got[0], meta["layout"])
    if not ok:
        raise ModelError(f"{dst}: float16 scores or kept boxes differ from float32 by up to "
                         f"{worst:.4g}; keep the float32 model")
    print(f"export: float16 vs float32 max |diff| {worst:.4g} on a rendered scene (scores, and "
          f"boxes scoring >= {FP16_CHECK_CONF})")
    provenance["fp16_from"] = Path(src).name
    provenance["fp16_max_abs_diff"] = f"{worst:.4g}"
    return save_model(half, dst, names, int(meta["stride"]), "fp16", provenance)


def pruning_provenance(info):
    """Metadata keys for a network pruned by hanja_live.train.prune (its ``pruning`` dict)."""
    if not info:
        return {}
    return {
        "pruned_ratio": f"{info['ratio']:g}",
        "pruned_macs_kept": f"{info['macs_kept']:.4f}",
        "pruned_params_kept": f"{info['params_kept']:.4f}",
        "pruned_from": Path(str(info.get("source_weights", "?"))).name,
        "pruned_setting": f"{info['importance']}, {'global' if info['global'] else 'uniform'}, "
                          f"round to {info['round_to']}",
    }


def averaging_provenance(sources):
    """Metadata key for a checkpoint written by hanja_live.train.average (its ``averaged_from``)."""
    if not sources:
        return {}
    return {"averaged_from": f"{len(sources)} checkpoints, sha256 "
                             + " ".join(s["sha256"][:12] for s in sources)}


def rebuilt_provenance(source):
    """Metadata key for a checkpoint rebuilt by hanja_live.train.checkpoint_from_onnx (its
    ``from_onnx``): the ONNX whose own metadata holds the earlier provenance."""
    if not source:
        return {}
    return {"rebuilt_from": f"{Path(source['path']).name}, sha256 {source['sha256'][:12]}"}


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _parse_imgsz(values):
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def export(weights, imgsz=(416, 416), out="models/hanja.onnx", fp16_out=None,
           opset=DEFAULT_OPSET, simplify=True):
    """Export ``weights`` (ultralytics .pt) to ``out`` (+ ``fp16_out``); returns the metadata."""
    from hanja_live.train.offline import prepare_ultralytics

    ultralytics = prepare_ultralytics()
    import torch
    from ultralytics import YOLO

    if not Path(weights).is_file():
        raise HanjaLiveError(f"weights {weights} do not exist; train first "
                             f"(python -m hanja_live.train.train) or fix --weights")
    model = YOLO(str(weights))
    names = [model.names[k] for k in sorted(model.names)]
    stride = int(max(model.model.stride.tolist()))
    exported = model.export(format="onnx", imgsz=list(imgsz), opset=opset, dynamic=False,
                            simplify=False, half=False, batch=1, nms=False, device="cpu")
    provenance = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source_weights": str(weights),
        "source_sha256": sha256_of(weights),
        "ultralytics_version": ultralytics.__version__,
        "torch_version": torch.__version__,
        "opset": str(opset),
        "exporter": "hanja_live.train.export",
    }
    provenance.update(pruning_provenance(getattr(model.model, "pruning", None)))
    ckpt = getattr(model, "ckpt", None) or {}
    provenance.update(averaging_provenance(ckpt.get("averaged_from")))
    provenance.update(rebuilt_provenance(ckpt.get("from_onnx")))
    meta = save_model(onnx.load(exported), out, names, stride, "fp32", provenance, simplify)
    feed = np.random.default_rng(0).random((1, 3) + tuple(json.loads(meta["imgsz"])),
                                           dtype=np.float32)
    with torch.no_grad():
        ref = model.model.float().eval()(torch.from_numpy(feed))
    ref = (ref[0] if isinstance(ref, (list, tuple)) else ref).numpy()  # (1, 4+nc, N)
    got = run_onnxruntime(out, feed)[0]
    if ref.shape != got.shape or not np.allclose(got, ref, atol=1e-2, rtol=1e-3):
        raise ModelError(f"{out}: onnxruntime output (shape {got.shape}) differs from torch "
                         f"(shape {ref.shape}); try --no-simplify or another --opset")
    print(f"export: onnxruntime vs torch max |diff| {np.abs(got - ref).max():.3g}")
    print(f"export: {out} ({meta['layout']}, input {meta['imgsz']}, stride {meta['stride']}, "
          f"{len(names)} classes)")
    result = {"onnx": str(out), "metadata": meta}
    if fp16_out:
        result["fp16_onnx"] = str(fp16_out)
        result["fp16_metadata"] = convert_fp16(out, fp16_out)
    return result


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m hanja_live.train.export",
                                description="ultralytics weights -> static ONNX with the "
                                            "metadata hanja_live reads")
    p.add_argument("--weights", required=True, help="trained .pt (e.g. runs/NAME/weights/best.pt)")
    p.add_argument("--imgsz", type=int, nargs="+", default=[416], metavar="N",
                   help="input size: N (square) or H W (default 416)")
    p.add_argument("--out", required=True, help="ONNX file to write (a .yaml goes beside it)")
    p.add_argument("--fp16-out", help="also write a float16 copy here")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset (default {DEFAULT_OPSET}; TensorRT 8.2 parses up to 13)")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxslim")
    args = p.parse_args(argv)
    if len(args.imgsz) > 2:
        p.error("--imgsz takes one number or two (H W)")
    try:
        export(args.weights, _parse_imgsz(args.imgsz), args.out, args.fp16_out, args.opset,
               not args.no_simplify)
    except HanjaLiveError as exc:
        sys.exit(f"export: {exc}")


if __name__ == "__main__":
    main()
