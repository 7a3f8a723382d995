"""The whole offline chain in one reproducible command.

    python -m hanja_live.train.pipeline --out runs/hanja --seed 0 --train 20000 --val 1000 \\
        --test 1000 --model yolov5n --imgsz 416 --epochs 60 [--export-imgsz H W] \\
        [--size 640] [--test-size 1280] \\
        [--workers 16] [--device 0] [--skip-generate] [--redo STAGE ...] [--dry-run]

Stages, each a subprocess running the module's own command line (printed before it runs):

  generate  python -m hanja_live.train.dataset  -> OUT/data/{data.yaml,images,labels}
  train     python -m hanja_live.train.train     -> OUT/train/MODEL/weights/best.pt
  export    python -m hanja_live.train.export    -> OUT/models/hanja_MODEL.onnx (+ .fp16.onnx)
  evaluate  python -m hanja_live.train.evaluate  -> OUT/eval/test_fp32.json, test_fp16.json

A finished stage leaves OUT/stages/STAGE.json and is skipped the next time; a stage that runs
again makes every later stage run again. An interrupted training resumes from its last.pt.
OUT/summary.json gathers the paths, settings, stage times and test metrics.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from hanja_live.errors import ConfigError, HanjaLiveError

STAGES = ("generate", "train", "export", "evaluate")
PRECISIONS = ("fp32", "fp16")


class Plan(object):
    """Where every stage reads and writes, for one OUT folder and model."""

    def __init__(self, out, model):
        self.out = Path(out).resolve()
        self.data = self.out / "data"
        self.data_yaml = self.data / "data.yaml"
        self.train_project = self.out / "train"
        self.run_dir = self.train_project / model
        self.best = self.run_dir / "weights" / "best.pt"
        self.last = self.run_dir / "weights" / "last.pt"
        self.models = {"fp32": self.out / "models" / f"hanja_{model}.onnx",
                       "fp16": self.out / "models" / f"hanja_{model}.fp16.onnx"}
        self.reports = {p: self.out / "eval" / f"test_{p}.json" for p in PRECISIONS}
        self.stages = self.out / "stages"
        self.summary = self.out / "summary.json"

    def marker(self, stage):
        return self.stages / f"{stage}.json"


def stage_commands(plan, args, python=sys.executable):
    """{stage: [argv, ...]} for the settings in ``args`` (an argparse namespace)."""
    generate = [python, "-m", "hanja_live.train.dataset", "--out", str(plan.data),
                "--train", str(args.train), "--val", str(args.val), "--test", str(args.test),
                "--seed", str(args.seed), "--workers", str(args.workers),
                "--size", str(args.size), "--test-size", str(args.test_size)]
    train = [python, "-m", "hanja_live.train.train", "--data", str(plan.data_yaml),
             "--model", args.model, "--imgsz", str(args.imgsz), "--epochs", str(args.epochs),
             "--batch", str(args.batch), "--workers", str(args.workers),
             "--project", str(plan.train_project), "--name", args.model, "--exist-ok",
             "--seed", str(args.seed)]
    if args.device is not None:
        train += ["--device", str(args.device)]
    if args.cache:
        train += ["--cache", args.cache]
    if getattr(args, "hours", None):
        train += ["--hours", str(args.hours)]
    export_hw = getattr(args, "export_imgsz", None) or [args.imgsz]
    export = [python, "-m", "hanja_live.train.export", "--weights", str(plan.best),
              "--imgsz"] + [str(n) for n in export_hw] + ["--out", str(plan.models["fp32"]),
              "--fp16-out", str(plan.models["fp16"])]
    evaluate = [[python, "-m", "hanja_live.train.evaluate", "--model", str(plan.models[p]),
                 "--data", str(plan.data), "--split", "test", "--out", str(plan.reports[p])]
                for p in PRECISIONS]
    return {"generate": [generate], "train": [train], "export": [export], "evaluate": evaluate}


def _run(cmd, dry_run):
    print("+ " + " ".join(cmd), flush=True)
    if dry_run:
        return
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])  # folder that holds hanja_live/
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    code = subprocess.call(cmd, env=env)
    if code != 0:
        raise HanjaLiveError(f"'{cmd[2]}' exited with status {code}; fix the cause shown above "
                             f"and run the pipeline again (finished stages are skipped)")


def _without_resume(commands):
    """A stage's recorded commands as first planned: an interrupted training resumed with --resume."""
    return [[a for a in cmd if a != "--resume"] for cmd in commands]


def run_pipeline(args, python=sys.executable):
    """Run the stages that are not done yet; returns the summary dict."""
    plan = Plan(args.out, args.model)
    commands = stage_commands(plan, args, python)
    if args.skip_generate and not plan.data_yaml.is_file():
        raise ConfigError(f"--skip-generate: {plan.data_yaml} does not exist; drop "
                          f"--skip-generate or put the data set in {plan.data}")
    timings = {}
    rerun = False  # once a stage runs, the ones after it must too
    for stage in STAGES:
        marker = plan.marker(stage)
        forced = rerun or stage in args.redo
        if stage == "generate" and args.skip_generate:
            print(f"pipeline: generate skipped (--skip-generate), data in {plan.data}", flush=True)
            continue
        if marker.is_file() and not forced:
            print(f"pipeline: {stage} done before, skipped ({marker})", flush=True)
            done_with = json.loads(marker.read_text(encoding="utf-8")).get("commands")
            if done_with is not None and _without_resume(done_with) != commands[stage]:
                print(f"pipeline: warning: {stage} ran with other settings than these; its output is "
                      f"kept. Add --redo {stage} to run it (and the stages after it) with these",
                      flush=True)
            continue
        rerun = True
        cmds = commands[stage]
        if stage == "train" and plan.last.is_file() and not forced:
            cmds = [cmds[0] + ["--resume"]]
            print(f"pipeline: resuming the interrupted training from {plan.last}", flush=True)
        print(f"pipeline: {stage}", flush=True)
        start = time.monotonic()
        for cmd in cmds:
            _run(cmd, args.dry_run)
        timings[stage] = round(time.monotonic() - start, 1)
        if not args.dry_run:
            plan.stages.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({
                "commands": cmds, "seconds": timings[stage],
                "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds")}, indent=2) + "\n", encoding="utf-8")
    summary = _summary(plan, args, timings)
    if not args.dry_run:
        plan.summary.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n",
                                encoding="utf-8")
        print(f"pipeline: summary {plan.summary}")
    for key in ("data_yaml", "best_weights", "onnx_fp32", "onnx_fp16"):
        print(f"  {key}: {summary['paths'][key]}")
    for p, metrics in summary["test"].items():
        if metrics:
            print(f"  test {p}: mAP50 {metrics['mAP50']}  mAP50-95 {metrics['mAP50_95']}  "
                  f"P {metrics['precision']}  R {metrics['recall']}  "
                  f"FP/empty image {metrics['fp_per_empty_image']}")
    return summary


def _summary(plan, args, timings):
    seconds = {}
    for stage in STAGES:
        marker = plan.marker(stage)
        if marker.is_file():
            seconds[stage] = json.loads(marker.read_text(encoding="utf-8")).get("seconds")
    seconds.update(timings)
    test = {}
    for p in PRECISIONS:
        report = plan.reports[p]
        if report.is_file():
            r = json.loads(report.read_text(encoding="utf-8"))
            test[p] = {k: r.get(k) for k in ("mAP50", "mAP50_95", "precision", "recall",
                                              "fp_per_empty_image", "conf_threshold")}
            test[p]["per_class_AP50_95"] = {row["name"]: row["AP50_95"] for row in r["per_class"]}
            test[p]["counts"] = r.get("counts")
        else:
            test[p] = None
    return {
        "settings": {k: getattr(args, k) for k in ("seed", "train", "val", "test", "size",
                                                   "test_size", "model", "imgsz", "export_imgsz",
                                                   "epochs", "hours", "batch", "workers", "device",
                                                   "cache", "skip_generate")},
        "paths": {"out": str(plan.out), "data_yaml": str(plan.data_yaml),
                  "run_dir": str(plan.run_dir), "best_weights": str(plan.best),
                  "onnx_fp32": str(plan.models["fp32"]), "onnx_fp16": str(plan.models["fp16"]),
                  "report_fp32": str(plan.reports["fp32"]),
                  "report_fp16": str(plan.reports["fp16"])},
        "stage_seconds": seconds,
        "test": test,
        "python": sys.version.split()[0],
    }


def build_parser():
    p = argparse.ArgumentParser(prog="python -m hanja_live.train.pipeline",
                                description="generate -> train -> export -> evaluate, resumable")
    p.add_argument("--out", required=True, help="folder for everything the pipeline writes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train", type=int, default=20000, help="training images to generate")
    p.add_argument("--val", type=int, default=1000, help="validation images")
    p.add_argument("--test", type=int, default=1000, help="test images")
    p.add_argument("--size", type=int, default=640, help="long side of the training and validation images")
    p.add_argument("--test-size", type=int, default=1280,
                   help="long side of the test images: 1280 scores the model on 1280x720 and "
                        "1280x960 frames, as the app's camera delivers them")
    p.add_argument("--model", default="yolov5n", help="architecture: yolov5n, yolov5s, ...")
    p.add_argument("--imgsz", type=int, default=416, help="training input size (square)")
    p.add_argument("--export-imgsz", type=int, nargs="+", metavar="N",
                   help="network input of the exported model, H W or one side (default: --imgsz); "
                        "the network is fully convolutional, so 16:9 camera frames can use e.g. "
                        "480 832 for the pixels a square 640 input spends on padding")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--hours", type=float, help="train for this wall-clock time instead of --epochs")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=8, help="generator and data loader processes")
    p.add_argument("--device", help="training device: 0, cpu, ... (default: ultralytics picks)")
    p.add_argument("--cache", choices=("ram", "disk"), help="cache decoded training images")
    p.add_argument("--skip-generate", action="store_true", help="use the data set in OUT/data")
    p.add_argument("--redo", nargs="+", default=[], choices=STAGES, metavar="STAGE",
                   help="run these stages (and all after them) even if done: " + ", ".join(STAGES))
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.export_imgsz and len(args.export_imgsz) > 2:
        parser.error("--export-imgsz takes one number or two (H W)")
    if args.export_imgsz and any(n <= 0 or n % 32 for n in args.export_imgsz):
        parser.error("--export-imgsz %s: give multiples of 32, the network's largest stride "
                     "(e.g. 480 832)" % " ".join(map(str, args.export_imgsz)))
    try:
        run_pipeline(args)
    except HanjaLiveError as exc:
        sys.exit(f"pipeline: {exc}")


if __name__ == "__main__":
    main()
