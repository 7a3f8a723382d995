"""The model variants side by side: cost, size, accuracy and CPU latency, measured in one run.

    python -m hanja_live.train.variants unpruned=models/M.onnx p40=runs/prune/p40.onnx \\
        fp16=models/M.fp16.onnx int8=models/M.int8.onnx --data T --split test \\
        [--runs 300] [--out variants.json] [--eval-dir DIR] [--reuse] [--no-eval] [--verifier V.onnx]

For each ONNX model (optionally labelled ``label=path``):
* GFLOPs: 2 x the multiply-accumulates of every convolution and matrix product, from the
  graph's own shapes (ONNX shape inference), so pruned, FP16 and QDQ INT8 graphs are counted
  the same way; element-wise work (activations, adds, decoding) is left out, as usual.
* parameters: elements of the weights and biases those operators read (BatchNorm is folded
  into the convolutions by the export), through DequantizeLinear for INT8 weights.
* file size of the .onnx.
* mAP50 and mAP50-95 on the labelled split through hanja_live.train.evaluate, i.e. through
  the app's own detect command (letterbox, decoder, NMS); the detector alone, as its latency is,
  unless --verifier names the verifier to run after each of them.
* ONNX Runtime CPU latency of the backend's infer() (hanja_live.train.latency): all models
  take turns call by call in the same process, median and p95 over --runs calls.

Prints a Markdown table (first model = reference for the speed column) and writes JSON.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnx

from hanja_live.errors import ConfigError, HanjaLiveError, ModelError

# op type -> (index of the weight input, index of the data input)
WEIGHTED_OPS = {
    "Conv": (1, 0), "ConvInteger": (1, 0), "QLinearConv": (3, 0), "ConvTranspose": (1, 0),
    "MatMul": (1, 0), "Gemm": (1, 0), "MatMulInteger": (1, 0), "QLinearMatMul": (3, 0),
}
BIAS_INPUT = {"Conv": 2, "ConvTranspose": 2, "Gemm": 2, "QLinearConv": 8}


def _shapes(model):
    """{tensor name: shape list} for every tensor with a fully known shape."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + \
            list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = [d.dim_value for d in dims]
    for t in inferred.graph.initializer:
        shapes[t.name] = list(t.dims)
    return shapes


def _source_initializer(name, producers, initializers):
    """The initializer behind ``name``, looking through DequantizeLinear / Cast / Identity."""
    seen = 0
    while name not in initializers and name in producers and seen < 4:
        node = producers[name]
        if node.op_type not in ("DequantizeLinear", "Cast", "Identity"):
            return None
        name = node.input[0]
        seen += 1
    return initializers.get(name)


def graph_cost(model):
    """(MACs, parameters) of an ONNX model: convolutions and matrix products only.

    Conv: output elements x (input channels per group x kernel area); MatMul / Gemm: output
    elements x the shared dimension; ConvTranspose: input elements x (output channels per
    group x kernel area). ModelError if a shape stays unknown (a dynamic input).
    """
    shapes = _shapes(model)
    producers = {o: n for n in model.graph.node for o in n.output}
    initializers = {t.name: t for t in model.graph.initializer}
    macs = 0
    params = 0
    counted = set()
    for node in model.graph.node:
        if node.op_type not in WEIGHTED_OPS:
            continue
        w_index, x_index = WEIGHTED_OPS[node.op_type]
        w_name, x_name, y_name = node.input[w_index], node.input[x_index], node.output[0]
        w_shape, x_shape, y_shape = shapes.get(w_name), shapes.get(x_name), shapes.get(y_name)
        if w_shape is None or y_shape is None or (node.op_type == "ConvTranspose" and x_shape is None):
            raise ModelError(f"{node.op_type} node {node.name or y_name}: shapes unknown after "
                             f"shape inference (weight {w_shape}, output {y_shape}); export "
                             f"the model with a fixed input size")
        if node.op_type in ("Conv", "ConvInteger", "QLinearConv"):
            macs += int(np.prod(y_shape)) * int(np.prod(w_shape[1:]))
        elif node.op_type == "ConvTranspose":
            macs += int(np.prod(x_shape)) * int(np.prod(w_shape[1:]))
        else:
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            k = w_shape[-1] if trans_b else w_shape[-2] if len(w_shape) > 1 else w_shape[0]
            macs += int(np.prod(y_shape)) * int(k)
        inputs = [w_name]
        if node.op_type in BIAS_INPUT and len(node.input) > BIAS_INPUT[node.op_type]:
            inputs.append(node.input[BIAS_INPUT[node.op_type]])
        for name in inputs:
            tensor = _source_initializer(name, producers, initializers)
            if tensor is not None and tensor.name not in counted:
                counted.add(tensor.name)
                params += int(np.prod(tensor.dims))
    return macs, params


def describe(path):
    """GFLOPs, parameters, file size and precision of one ONNX file."""
    from hanja_live.backends.loader import read_onnx
    from hanja_live.backends.onnxruntime_backend import precision_of

    model = onnx.load(str(path))
    macs, params = graph_cost(model)
    summary = read_onnx(str(path))
    dtype = np.float16 if summary.input_type == 10 else np.float32
    return {
        "gflops": 2 * macs / 1e9, "macs": macs, "params": params,
        "size_bytes": Path(path).stat().st_size,
        "precision": precision_of(dtype, summary.initializer_types, summary.op_types),
        "input": summary.input_shape,
    }


def parse_variant(text):
    """'label=path' -> (label, path); a bare path is labelled by its file name."""
    label, sep, path = text.partition("=")
    if not sep:
        label, path = Path(text).stem, text
    if not label or not path:
        raise ConfigError(f"variant {text!r}: give PATH or LABEL=PATH")
    if not Path(path).is_file():
        raise ConfigError(f"variant {label}: {path} does not exist; export or quantize it first")
    return label, path


def measure_variants(variants, data=None, split="test", runs=300, eval_dir=None, reuse=False,
                     evaluate_models=True, log=print, verifier=None):
    """Rows (one per (label, path)) with cost, size, accuracy and latency; latency in one run.
    verifier: a verifier .onnx scored after each detector, or None for the detectors alone."""
    from hanja_live.train import evaluate as ev
    from hanja_live.train.latency import measure

    labels = [label for label, _ in variants]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"variant labels repeat ({', '.join(labels)}); label each once")
    if evaluate_models and not data:
        raise ConfigError("--data is needed for mAP (or give --no-eval)")
    rows = []
    for i, (label, path) in enumerate(variants, 1):
        log(f"variants: [{i}/{len(variants)}] {label}: counting {path}")
        row = {"variant": label, "model": str(path)}
        row.update(describe(path))
        rows.append(row)
    if evaluate_models:
        eval_dir = Path(eval_dir) if eval_dir else None
        for i, row in enumerate(rows, 1):
            log(f"variants: [{i}/{len(rows)}] {row['variant']}: mAP on {data} ({split})")
            t0 = time.monotonic()
            out = eval_dir / f"{row['variant']}.json" if eval_dir else None
            report = ev.evaluate(row["model"], data, split, out=out, reuse=reuse,
                                 verifier=verifier if verifier else False)
            row["mAP50"], row["mAP50_95"] = report["mAP50"], report["mAP50_95"]
            row["eval_images"] = report["counts"]["images"]
            log(f"variants: {row['variant']}: mAP50 {row['mAP50']:.4f}, mAP50-95 "
                f"{row['mAP50_95']:.4f} ({time.monotonic() - t0:.0f} s)")
    log(f"variants: latency of {len(rows)} models, {runs} interleaved runs each")
    timed = measure([r["model"] for r in rows], runs=runs)
    for row, t in zip(rows, timed):
        row["median_ms"], row["p95_ms"] = t["median_ms"], t["p95_ms"]
    base = rows[0]["median_ms"]
    for row in rows:
        row["speedup"] = base / row["median_ms"]
    return rows


def _fmt(x, spec):
    return "–" if x is None else format(x, spec)


def markdown_table(rows):
    lines = ["| variant | precision | GFLOPs | parameters | file | mAP50 | mAP50-95 | "
             "CPU median (p95) | speed vs first |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['precision']} | {r['gflops']:.2f} | {r['params'] / 1e6:.2f} M | "
            f"{r['size_bytes'] / 1e6:.1f} MB | {_fmt(r.get('mAP50'), '.3f')} | "
            f"{_fmt(r.get('mAP50_95'), '.3f')} | {r['median_ms']:.1f} ms ({r['p95_ms']:.1f}) | "
            f"{r['speedup']:.2f}× |")
    return "\n".join(lines)


def environment(runs):
    import onnxruntime

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "onnxruntime": onnxruntime.__version__, "cpu": cpu, "cpus": os.cpu_count(),
            "runs": runs, "python": platform.python_version()}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m hanja_live.train.variants",
                                description="cost, size, mAP and CPU latency of model variants")
    p.add_argument("variants", nargs="+", metavar="[LABEL=]MODEL.onnx",
                   help="the models; the first is the reference for the speed column")
    p.add_argument("--data", help="labelled data set folder (data.yaml, images/, labels/)")
    p.add_argument("--split", default="test")
    p.add_argument("--runs", type=int, default=300, help="timed calls per model (default 300)")
    p.add_argument("--out", help="JSON file for the rows")
    p.add_argument("--eval-dir", help="keep each variant's report and detections here")
    p.add_argument("--reuse", action="store_true",
                   help="score detections already in --eval-dir instead of running detect")
    p.add_argument("--no-eval", action="store_true", help="skip mAP (cost and latency only)")
    p.add_argument("--verifier", help="score each detector with this verifier after it (default: "
                                      "the detectors alone, as their latency is measured)")
    args = p.parse_args(argv)
    if args.reuse and not args.eval_dir:
        p.error("--reuse needs --eval-dir")
    try:
        variants = [parse_variant(v) for v in args.variants]
        rows = measure_variants(variants, args.data, args.split, args.runs, args.eval_dir,
                                args.reuse, not args.no_eval, verifier=args.verifier)
    except HanjaLiveError as exc:
        sys.exit(f"variants: {exc}")
    print(markdown_table(rows))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"environment": environment(args.runs),
                                              "data": args.data, "split": args.split,
                                              "rows": rows}, indent=1, ensure_ascii=False) + "\n",
                                  encoding="utf-8")
        print(f"variants: {args.out}")


if __name__ == "__main__":
    main()
