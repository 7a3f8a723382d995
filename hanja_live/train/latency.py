"""ONNX Runtime CPU latency of several models, measured in one run on the same frames.

    python -m hanja_live.train.latency models/a.onnx models/b.onnx [--runs 200] [--json out.json]

Each model goes through the app's own backend loader; the figure is the backend's infer()
alone (no letterbox or decode), median and p95 over --runs calls after warm-up. The models
take turns call by call, so a change in machine load touches all of them alike.
"""

import argparse
import json
import sys
import time

import numpy as np

from hanja_live.backends.loader import load_backend


def measure(paths, runs=200, warmup=10, seed=0):
    backends = [load_backend(p, backend="onnxruntime", log=lambda *_: None) for p in paths]
    rng = np.random.default_rng(seed)
    for b in backends:
        b.input[...] = rng.random(b.input.shape).astype(b.input.dtype)
        for _ in range(warmup):
            b.infer()
    times = [[] for _ in backends]
    for i in range(runs):
        for k, b in enumerate(backends):
            t0 = time.perf_counter()
            b.infer()
            times[k].append((time.perf_counter() - t0) * 1e3)
        if (i + 1) % 50 == 0:
            sys.stderr.write("\rlatency: %d/%d runs" % (i + 1, runs))
    sys.stderr.write("\n")
    rows = []
    for path, b, t in zip(paths, backends, times):
        rows.append({"model": path, "input": list(b.input.shape), "precision": b.precision,
                     "median_ms": float(np.median(t)), "p95_ms": float(np.percentile(t, 95))})
        b.close()
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m hanja_live.train.latency", description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)
    rows = measure(args.models, runs=args.runs)
    base = rows[0]["median_ms"]
    print("%-44s %-16s %6s %10s %8s %8s" % ("model", "input", "prec", "median ms", "p95 ms", "x first"))
    for r in rows:
        print("%-44s %-16s %6s %10.2f %8.2f %8.2f" % (r["model"][-44:], "x".join(map(str, r["input"])),
                                                     r["precision"], r["median_ms"], r["p95_ms"],
                                                     r["median_ms"] / base))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
