"""`hanja_live bench`: the whole pipeline headless on a clip, against baselines, with figures.

    python -m hanja_live bench [SOURCE] [--frames N] [--seconds S] [--repeat R]
                               [--sink null|video] [--workers N] [--json OUT] [--model PATH ...]

Modes, each on the same frames of the same source, in one invocation:
  pipelined    the app's loop (hanja_live.pipeline): capture, inference and present run in
               their own threads
  sequential   one thread doing read -> letterbox -> infer -> decode -> draw -> sink, the
               seed project's loop, with the same detector, overlay and sink objects; a video
               file is decoded by cv2.VideoCapture in that thread
  ultralytics  YOLO(model).predict(frame) on the same ONNX model, frame by frame from the same
               reader as the sequential loop, drawn with its own plot(), into the same sink;
               only where the ultralytics package can be imported (no dependency of the app)

A clip with a segments file beside it (clip.segments.json, as the bundled demo has: 0, 5, 20
and 40 characters in view) is measured segment by segment: each mode runs the first --frames
frames of a segment (all of it by default), the modes take turns (A B C, then C B A, ...), and
so every ratio compares runs made seconds apart, whatever else the machine is doing. Other
sources are one chunk from their start. The sink "null" drops the drawn frames (the default:
it measures capture, model and overlay); "video" records them to a temporary mp4 as a headless
run does, which on a small CPU costs more than the model.
"""

import contextlib
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from typing import Dict, List, NamedTuple, Optional

import cv2
import numpy as np

from . import __version__, paths
from .app import load_detector, load_detectors, resolve_source_uri
from .errors import EndOfStream, HanjaLiveError
from .frame import Frame
from .overlay import Annotator
from .pipeline import FrameRecord, Output, Pipeline, Presenter
from .sinks import VideoSink
from .sinks.output_path import prepare_output_path
from .sources import Source, open_source
from .sources.opencv_capture import has_backend
from .sources.uri import VIDEO, parse_uri
from .stats import describe, rate, spread
from .workers import usable_cpus

log = logging.getLogger("hanja_live")

MODES = ("pipelined", "sequential", "ultralytics")
SINKS = ("null", "video")
STAGES = ("capture", "preprocess", "inference", "decode_nms", "verify", "overlay", "sink")
STAGE_LABELS = {"capture": "capture", "preprocess": "preprocess", "inference": "inference",
                "decode_nms": "decode+NMS", "verify": "verifier", "overlay": "overlay", "sink": "sink"}
LIVE_DEFAULT_FRAMES = 300  # a camera never ends: frames per run when no limit is given
PROGRESS_EVERY_S = 0.5
# the targets for this pipeline (2-core x86, ONNX Runtime on the CPU, 720p demo clip)
TARGET_SPEEDUP = 1.5
TARGET_LOAD_RATIO = 0.95
TARGET_POST_MS = 3.0


class Chunk(NamedTuple):
    """A stretch of the source that every mode runs in turn."""

    targets: Optional[int]  # characters in view (from the segments file), None: unknown
    start: int  # first frame
    frames: Optional[int]  # frames to run, None: to the end of the source


def segments_path(uri):
    # type: (str) -> str
    """clip.mp4 -> clip.segments.json: where a clip's load segments are described."""
    return os.path.splitext(str(uri))[0] + ".segments.json"


def load_segments(uri):
    # type: (str) -> List[Dict]
    """[{"targets", "start_frame", "end_frame"}] from the clip's segments file, or []."""
    path = segments_path(uri)
    if not os.path.isfile(path):
        return []
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
        return [{"targets": int(s["targets"]), "start_frame": int(s["start_frame"]),
                 "end_frame": int(s["end_frame"])} for s in data["segments"]]
    except (IOError, OSError, ValueError, KeyError, TypeError) as exc:
        raise HanjaLiveError("cannot read the segments file %s (%s); fix it or move it away "
                             "to bench without per-segment figures" % (path, exc))


def plan_chunks(segments, frames):
    # type: (List[Dict], Optional[int]) -> List[Chunk]
    """One chunk per segment (its first ``frames`` frames, else all of it), or one chunk of
    ``frames`` from the start when there are no segments."""
    if not segments:
        return [Chunk(None, 0, frames)]
    chunks = []
    for seg in segments:
        length = seg["end_frame"] - seg["start_frame"] + 1
        chunks.append(Chunk(seg["targets"], seg["start_frame"],
                            length if frames is None else min(frames, length)))
    return chunks


class Recorder(object):
    """Collects the FrameRecords of one run, shows progress, says when the run is over."""

    def __init__(self, label, frames=None, seconds=None, progress=True, stream=None):
        self.label = label
        self.frames = frames
        self.seconds = seconds
        self.progress = progress
        self.stream = stream if stream is not None else sys.stderr
        self.records = []  # type: List[FrameRecord]
        self._started = None  # type: Optional[float]
        self._shown_at = 0.0
        self._cpu = [None, None]  # type: List[Optional[float]]  # at the first, last frame

    @property
    def cpu_ms_per_frame(self):
        # type: () -> Optional[float]
        """CPU time of the whole process (every thread: ONNX Runtime's, the decoder's, the
        encoder's) per frame, between the first frame and the last."""
        first, last = self._cpu
        if first is None or last is None or len(self.records) < 2:
            return None
        return (last - first) * 1e3 / (len(self.records) - 1)

    def add(self, record):
        # type: (FrameRecord) -> bool
        """Keep ``record``; True when the run has its frames or its seconds."""
        self.records.append(record)
        self._cpu[1] = _cpu_seconds()
        now = record.t_done
        if self._started is None:
            self._started = now
            self._cpu[0] = self._cpu[1]
        if self.progress and now - self._shown_at >= PROGRESS_EVERY_S:
            self._shown_at = now
            self._show()
        done = self.frames is not None and len(self.records) >= self.frames
        return done or (self.seconds is not None and now - self._started >= self.seconds)

    def _show(self):
        fps = rate([r.t_done for r in self.records[-30:]])
        total = "/%d" % self.frames if self.frames else ""
        self.stream.write("\r%s  frame %d%s  %s fps   " % (
            self.label, len(self.records), total, "%.1f" % fps if fps else "--"))
        self.stream.flush()

    def finish(self):
        if self.progress:
            self._show()
            self.stream.write("\n")
            self.stream.flush()


def summarize(records):
    """Stage times, latencies and counts of some FrameRecords (one run, or pooled)."""
    return {
        "frames": len(records),
        "stages_ms": {
            "capture": describe([r.capture_ms for r in records]),
            "preprocess": describe([r.preprocess_ms for r in records]),
            "inference": describe([r.inference_ms for r in records]),
            "decode_nms": describe([r.decode_ms for r in records]),
            "verify": describe([r.verify_ms for r in records]),
            "overlay": describe([r.overlay_ms for r in records]),
            "sink": describe([r.sink_ms for r in records]),
        },
        "preprocess_decode_overlay_ms": describe(
            [r.preprocess_ms + r.decode_ms + r.overlay_ms for r in records]),
        "preprocess_decode_overlay_cpu_ms": describe(
            [r.pre_decode_overlay_cpu_ms for r in records]),
        "latency_ms": {
            "capture_to_display": describe([(r.t_done - r.t_capture) * 1e3 for r in records]),
            "read_to_display": describe([(r.t_done - r.t_read) * 1e3 for r in records]),
        },
        "detections": describe([r.detections for r in records]),
    }


@contextlib.contextmanager
def sink_outputs(kind, fps, folder, name):
    """The outputs of one run: a VideoSink into ``folder`` ("video") or none ("null")."""
    if kind == "null":
        yield []
        return
    path = os.path.join(folder, name + ".mp4")
    with VideoSink(path, fps=fps or 30.0, overwrite=True) as video:
        yield [Output("recording to %s" % path,
                      lambda frame, image, detections: video.write(image))]


def _run_name(label):
    return "".join(ch if ch.isalnum() else "_" for ch in label)


def skip_frames(src, count, read_timeout_s=2.0):
    # type: (Source, int, float) -> int
    """Read and drop ``count`` frames of ``src`` (to reach a chunk); returns how many."""
    skipped = 0
    while skipped < count:
        try:
            frame = src.read(timeout=read_timeout_s)
        except EndOfStream:
            break
        if frame is not None:
            skipped += 1
    return skipped


def run_pipelined(uri, detectors, annotator, sink, folder, recorder, start=0,
                  read_timeout_s=2.0):
    """The app's pipelined loop on ``uri`` from frame ``start`` (one inference thread per
    detector); returns frames dropped."""
    src = open_source(uri, loop=False, read_timeout_s=read_timeout_s)
    with src, sink_outputs(sink, src.fps, folder, _run_name(recorder.label)) as outputs:
        skip_frames(src, start, read_timeout_s)
        presenter = Presenter(annotator, outputs, window=None, show_fps=True)
        pipeline = Pipeline(src, detectors, presenter, read_timeout_s=read_timeout_s,
                            on_frame=recorder.add, log_every_s=None)
        pipeline.run()
        return pipeline.dropped


class SequentialReader(object):
    """Frames read in the caller's thread: cv2.VideoCapture for video files, else the source.

    A video file is decoded here, into one reused buffer, as the seed project did; a camera,
    stream or folder is read through open_source (a camera's grab thread stays).
    """

    def __init__(self, uri, start=0, read_timeout_s=2.0):
        self.read_timeout_s = read_timeout_s
        self.index = 0
        self._capture = None
        self._source = None
        self._buffer = None  # type: Optional[np.ndarray]
        if parse_uri(uri).kind == VIDEO:
            api = cv2.CAP_FFMPEG if has_backend(cv2.CAP_FFMPEG) else cv2.CAP_ANY
            self._capture = cv2.VideoCapture(str(uri), api)
            if not self._capture.isOpened():
                raise HanjaLiveError("cannot decode %s with OpenCV; check the file" % uri)
            fps = self._capture.get(cv2.CAP_PROP_FPS)
            self.fps = float(fps) if fps and 0 < fps < 1e5 else None
            # grab() decodes without handing the frame over: exact, unlike seeking
            while self.index < start and self._capture.grab():
                self.index += 1
        else:
            self._source = open_source(uri, loop=False, read_timeout_s=read_timeout_s)
            self.fps = self._source.fps
            skip_frames(self._source, start, read_timeout_s)

    @property
    def dropped(self):
        # type: () -> int
        return self._source.dropped if self._source is not None else 0

    def read(self):
        # type: () -> Optional[Frame]
        """The next frame; None at the end."""
        if self._capture is not None:
            ok, image = self._capture.read(self._buffer) if self._buffer is not None \
                else self._capture.read()
            if not ok or image is None:
                return None
            self._buffer = image
            frame = Frame(image, self.index, None, time.monotonic())
            self.index += 1
            return frame
        source = self._source
        assert source is not None  # __init__ opens either a capture or a source
        while True:
            try:
                got = source.read(timeout=self.read_timeout_s)
            except EndOfStream:
                return None
            if got is not None:
                return got

    def close(self):
        if self._capture is not None:
            self._capture.release()
        if self._source is not None:
            self._source.close()


def _timed_reads(reader):
    """(frame, capture ms, monotonic time after the read) for each frame of ``reader``."""
    while True:
        t0 = time.perf_counter()
        frame = reader.read()
        if frame is None:
            return
        yield frame, (time.perf_counter() - t0) * 1e3, time.monotonic()


def run_sequential(uri, detector, annotator, sink, folder, recorder, start=0):
    """read -> letterbox -> infer -> decode -> draw -> sink, all in this thread."""
    reader = SequentialReader(uri, start)
    try:
        with sink_outputs(sink, reader.fps, folder, _run_name(recorder.label)) as outputs:
            presenter = Presenter(annotator, outputs, window=None, show_fps=True)
            for frame, capture_ms, t_read in _timed_reads(reader):
                detections, times = detector(frame.image)
                done = presenter.present(frame, detections, times.inference_ms)
                record = FrameRecord(frame.index, len(detections), capture_ms,
                                     times.preprocess_ms, times.inference_ms, times.decode_ms,
                                     times.verify_ms,
                                     done.overlay_ms, done.sink_ms,
                                     times.preprocess_cpu_ms + times.decode_cpu_ms
                                     + done.overlay_cpu_ms, frame.t_capture, t_read,
                                     time.monotonic())
                if recorder.add(record):
                    break
        return reader.dropped
    finally:
        reader.close()


def load_ultralytics(model_path, detector):
    """(YOLO model, predict settings), or (None, why not): ultralytics is optional."""
    try:
        # pulls in torch, so never imported at module level (the app itself never does)
        from ultralytics import YOLO
    except ImportError as exc:
        return None, ("ultralytics cannot be imported here (%s); pip install ultralytics to "
                      "add this baseline" % exc)
    h, w = detector.backend.info.input_hw
    decoder = detector.decoder
    settings = dict(imgsz=[h, w], conf=decoder.conf, iou=decoder.iou, max_det=decoder.max_det,
                    verbose=False)
    yolo = YOLO(model_path, task="detect")
    yolo.predict(source=np.full((h, w, 3), 114, np.uint8), **settings)  # warm-up
    return yolo, settings


def run_ultralytics(uri, yolo, settings, sink, folder, recorder, start=0):
    """YOLO.predict frame by frame, frames from the sequential loop's reader.

    Its Results give preprocess / inference / postprocess milliseconds; overlay is
    Results.plot(); their CPU time is not reported apart, so wall time stands in for it.
    """
    reader = SequentialReader(uri, start)
    try:
        with sink_outputs(sink, reader.fps, folder, _run_name(recorder.label)) as outputs:
            for frame, capture_ms, t_read in _timed_reads(reader):
                result = yolo.predict(source=frame.image, **settings)[0]
                speed = dict(getattr(result, "speed", None) or {})
                pre = float(speed.get("preprocess") or 0.0)
                inf = float(speed.get("inference") or 0.0)
                post = float(speed.get("postprocess") or 0.0)
                t1 = time.perf_counter()
                image = result.plot()
                t2 = time.perf_counter()
                drawn = Frame(image, frame.index, frame.name, frame.t_capture)
                for output in outputs:
                    output.write(drawn, image, None)
                t3 = time.perf_counter()
                boxes = getattr(result, "boxes", None)
                record = FrameRecord(frame.index, len(boxes) if boxes is not None else 0,
                                     capture_ms, pre, inf, post, 0.0, (t2 - t1) * 1e3,
                                     (t3 - t2) * 1e3, pre + post + (t2 - t1) * 1e3,
                                     frame.t_capture, t_read, time.monotonic())
                if recorder.add(record):
                    break
        return reader.dropped
    finally:
        reader.close()


def warm_up(uri, detector, annotator, frames):
    """Run ``frames`` frames through the model and overlay (first calls are slow), unmeasured."""
    if frames <= 0:
        return
    with open_source(uri, loop=False) as src:
        for _ in range(frames):
            try:
                frame = src.read()
            except EndOfStream:
                break
            if frame is not None:
                detections, _ = detector(frame.image)
                annotator.annotate(frame.image, detections)


def _chunk_rate(runs):
    """End-to-end FPS over several chunks: all their frames over all their time."""
    frames = sum(r["frames"] - 1 for r in runs if r["fps"])
    seconds = sum((r["frames"] - 1) / r["fps"] for r in runs if r["fps"])
    return frames / seconds if seconds > 0 else None


def mode_summary(runs, chunks, repeats):
    """One mode's figures: FPS spread over repeats (whole source and per chunk), stage times
    pooled over every frame."""
    done = [r for r in runs if "skipped" not in r]
    if not done:
        return {"skipped": runs[0]["skipped"] if runs else "not run"}
    summary = summarize([rec for r in done for rec in r["_records"]])
    summary["runs"] = len(done)
    summary["fps"] = spread([_chunk_rate([r for r in done if r["repeat"] == k])
                             for k in range(repeats)])
    summary["dropped"] = sum(r["dropped"] for r in done)
    summary["cpu_ms_per_frame"] = spread([r.get("cpu_ms_per_frame") for r in done])
    summary["chunks"] = []
    for i, chunk in enumerate(chunks):
        mine = [r for r in done if r["chunk"] == i]
        inside = [rec for r in mine for rec in r["_records"]]
        entry = {"targets": chunk.targets, "start_frame": chunk.start,
                 "frames": sum(r["frames"] for r in mine),
                 "fps": spread([r["fps"] for r in mine])}
        entry.update({k: v for k, v in summarize(inside).items()
                      if k in ("detections", "preprocess_decode_overlay_ms",
                               "preprocess_decode_overlay_cpu_ms")})
        summary["chunks"].append(entry)
    return summary


def targets(runs, chunks, cpus=None):
    """The issue's three targets, each with its spread over the paired runs.

    ``cpus``: CPUs this process may use; with it, the speed-up target also gets its ceiling,
    the pipelined loop's FPS if its CPU time per frame kept every CPU busy, over the sequential
    loop's FPS. A CPU-bound pipeline cannot beat that by overlapping stages."""
    done = [r for r in runs if "skipped" not in r and r["fps"]]
    pairs = {}  # type: Dict[tuple, Dict[str, Dict]]
    for r in done:
        pairs.setdefault((r["repeat"], r["chunk"]), {})[r["mode"]] = r
    # pipelined and sequential on the same chunk, one right after the other
    speedups = [p["pipelined"]["fps"] / p["sequential"]["fps"] for p in pairs.values()
                if "pipelined" in p and "sequential" in p]
    ceilings = [cpus * 1000.0 / p["pipelined"]["cpu_ms_per_frame"] / p["sequential"]["fps"]
                for p in pairs.values() if cpus and "pipelined" in p and "sequential" in p
                and p["pipelined"].get("cpu_ms_per_frame")]
    load = []
    known = [i for i, c in enumerate(chunks) if c.targets is not None]
    if len(known) >= 2:
        low = min(known, key=lambda i: chunks[i].targets)
        high = max(known, key=lambda i: chunks[i].targets)
        for k in sorted({r["repeat"] for r in done}):
            fps = {r["chunk"]: r["fps"] for r in done
                   if r["mode"] == "pipelined" and r["repeat"] == k}
            if low in fps and high in fps and chunks[low].targets != chunks[high].targets:
                load.append(fps[high] / fps[low])
    pipelined = [r for r in runs if r["mode"] == "pipelined" and "skipped" not in r]
    post = [describe([rec.preprocess_ms + rec.decode_ms + rec.overlay_ms
                      for rec in r["_records"]]) for r in pipelined]
    post_cpu = [describe([rec.pre_decode_overlay_cpu_ms for rec in r["_records"]])
                for r in pipelined]
    all_post = describe([rec.preprocess_ms + rec.decode_ms + rec.overlay_ms
                         for r in pipelined for rec in r["_records"]])
    all_cpu = describe([rec.pre_decode_overlay_cpu_ms for r in pipelined for rec in r["_records"]])

    def worst(figures):
        medians = [f["median"] for f in figures if f is not None]
        return max(medians) if medians else None

    def verdict(figure, target, at_least):
        if figure is None:
            return None
        return bool(figure >= target) if at_least else bool(figure <= target)

    speed, load_spread = spread(speedups), spread(load)
    return {
        "pipelined_vs_sequential_fps": {
            "value": speed, "target": TARGET_SPEEDUP,
            "met": verdict(speed and speed["median"], TARGET_SPEEDUP, True),
            "cpu_bound_ceiling": spread(ceilings), "cpus": cpus},
        "most_vs_fewest_characters_fps": {
            "value": load_spread, "target": TARGET_LOAD_RATIO,
            "met": verdict(load_spread and load_spread["median"], TARGET_LOAD_RATIO, True)},
        # judged on wall time in the pipelined loop, the stricter figure; CPU time beside it
        "preprocess_decode_overlay_median_ms": {
            "value": all_post and all_post["median"], "worst_run": worst(post),
            "cpu_value": all_cpu and all_cpu["median"], "cpu_worst_run": worst(post_cpu),
            "target": TARGET_POST_MS,
            "met": verdict(worst(post), TARGET_POST_MS, False)},
    }


def run_bench(source_uri="demo", model=None, frames=None, seconds=None, repeat=1, sink="null",
              json_path=None, overwrite=False, warmup=10, modes=MODES, progress=True,
              command=None, out=None, workers=None):
    """Run the benchmark; prints the table to ``out`` (stdout) and returns the report dict.

    model: the config's model section (hanja_live.config.ModelConfig).
    frames / seconds: per run (per segment of a clip with segments); neither: every frame of
      a file or segment, LIVE_DEFAULT_FRAMES of a live source.
    workers: inference threads of the pipelined loop, each with its own backend (None: the
      config's model.workers, as the app; 0: chosen by hanja_live.workers.plan_workers); the
      baselines keep a backend of their own, with the config's threads.
    """
    out = out if out is not None else sys.stdout
    if sink not in SINKS:
        raise HanjaLiveError("--sink must be one of %s, got %r" % (", ".join(SINKS), sink))
    for name, value in (("--frames", frames), ("--seconds", seconds)):
        if value is not None and not value > 0:
            raise HanjaLiveError("%s must be > 0, got %r" % (name, value))
    if int(repeat) < 1:
        raise HanjaLiveError("--repeat must be at least 1, got %r" % (repeat,))
    if workers is not None and int(workers) < 0:
        raise HanjaLiveError("--workers must be 0 (as many as the app runs) or more, got %r"
                             % (workers,))
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise HanjaLiveError("modes must be some of %s, got %s" % (", ".join(MODES),
                                                                  ", ".join(modes) or "none"))
    if json_path:
        prepare_output_path(json_path, overwrite, "benchmark report")
    uri = resolve_source_uri(source_uri)
    folder = tempfile.mkdtemp(prefix="hanja-bench-")
    report = {"command": command, "version": __version__}
    try:
        with contextlib.ExitStack() as backends:
            detector = load_detector(model)  # the baselines'
            backends.enter_context(detector.backend)
            detectors = load_detectors(model, workers=None if workers is None else int(workers))  # the pipelined loop's
            for d in detectors:
                backends.enter_context(d.backend)
            annotator = Annotator(detector.names)
            with open_source(uri, loop=False) as probe:
                description, live = probe.description, probe.is_live
            segments = [] if live else load_segments(uri)
            if live and frames is None and seconds is None:
                frames = LIVE_DEFAULT_FRAMES
            chunks = plan_chunks(segments, frames)
            report.update(_header(uri, description, detector, model, sink, frames, seconds,
                                  repeat, warmup, len(detectors), segments))
            _print_header(out, report)
            for d in set([detector] + detectors):
                warm_up(uri, d, annotator, warmup)
            yolo, settings = (None, None)
            if "ultralytics" in modes:
                yolo, settings = _ultralytics_for(model, detector)
            runs = _run_all(uri, modes, chunks, int(repeat), seconds, detector, detectors,
                            annotator, sink, folder, yolo, settings, progress)
            report["modes"] = {m: mode_summary([r for r in runs if r["mode"] == m], chunks,
                                               int(repeat)) for m in modes}
            report["targets"] = targets(runs, chunks, cpus=usable_cpus())
            report["machine"]["load_average_at_end"] = _load_average()
            for r in runs:
                r.pop("_records", None)
            report["runs"] = runs
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    _print_table(out, report)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1, ensure_ascii=False)
            f.write("\n")
        log.info("bench report saved: %s", json_path)
    return report


def _ultralytics_for(model, detector):
    if not str(model.path).lower().endswith(".onnx"):
        return None, ("the ultralytics baseline runs the ONNX model; %s is not one"
                      % model.path)
    return load_ultralytics(paths.resolve(model.path), detector)


def _run_all(uri, modes, chunks, repeat, seconds, detector, detectors, annotator, sink, folder,
             yolo, settings, progress):
    """Every mode on every chunk, ``repeat`` times, the order turning each time; each run
    keeps its FrameRecords under "_records"."""
    runs = []  # type: List[Dict]
    total = len(modes) * len(chunks) * repeat
    turn = 0
    for rep in range(repeat):
        for ci, chunk in enumerate(chunks):
            order = list(modes) if turn % 2 == 0 else list(reversed(modes))
            turn += 1
            for mode in order:
                where = "" if chunk.targets is None else " %d chars" % chunk.targets
                label = "[%d/%d] %s%s" % (len(runs) + 1, total, mode, where)
                run = {"mode": mode, "repeat": rep, "chunk": ci, "targets": chunk.targets,
                       "start_frame": chunk.start, "position": len(runs)}
                if mode == "ultralytics" and yolo is None:
                    run["skipped"] = settings
                    if progress and rep == 0 and ci == 0:
                        sys.stderr.write("%s: skipped (%s)\n" % (label, settings))
                    runs.append(run)
                    continue
                recorder = Recorder(label, chunk.frames, seconds, progress)
                if mode == "pipelined":
                    dropped = run_pipelined(uri, detectors, annotator, sink, folder, recorder,
                                            chunk.start)
                elif mode == "sequential":
                    dropped = run_sequential(uri, detector, annotator, sink, folder, recorder,
                                             chunk.start)
                else:
                    dropped = run_ultralytics(uri, yolo, settings, sink, folder, recorder,
                                              chunk.start)
                recorder.finish()
                times = [rec.t_done for rec in recorder.records]
                run.update({"frames": len(recorder.records), "fps": rate(times),
                            "dropped": int(dropped), "_records": recorder.records,
                            "cpu_ms_per_frame": recorder.cpu_ms_per_frame})
                stats = summarize(recorder.records)
                run.update({k: stats[k] for k in ("stages_ms", "preprocess_decode_overlay_ms",
                                                  "preprocess_decode_overlay_cpu_ms",
                                                  "latency_ms", "detections")})
                runs.append(run)
    return runs


def _load_average():
    # type: () -> Optional[List[float]]
    """1, 5 and 15 minute load averages: how busy the machine was (others' work included)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _cpu_seconds():
    # type: () -> Optional[float]
    """CPU time of this process so far (all threads, user + system); None where unknown."""
    try:
        import resource
    except ImportError:
        return None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _header(uri, description, detector, model, sink, frames, seconds, repeat, warmup, workers,
            segments):
    backend = detector.backend
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "opencv": cv2.__version__}
    try:
        import onnxruntime
        versions["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return {
        "source": {"uri": str(uri), "description": description, "segments": segments},
        "model": {"path": paths.resolve(model.path), "backend": backend.name,
                  "precision": backend.precision, "detail": backend.detail,
                  "input_hw": list(backend.info.input_hw), "conf": detector.decoder.conf,
                  "iou": detector.decoder.iou},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "processor": platform.machine(), "versions": versions,
                    "load_average_at_start": _load_average()},
        "settings": {"frames": frames, "seconds": seconds, "repeat": int(repeat),
                     "sink": sink, "warmup_frames": warmup, "workers": int(workers)},
    }


def _cell(figure, fmt="%.1f"):
    if figure is None:
        return "-"
    if "min" in figure:
        if figure["n"] > 1:
            return (fmt + " (" + fmt + "-" + fmt + ")") % (figure["median"], figure["min"],
                                                         figure["max"])
        return fmt % figure["median"]
    return (fmt + " / " + fmt) % (figure["median"], figure["p95"])


def _print_header(out, report):
    model, settings = report["model"], report["settings"]
    out.write("hanja_live bench: %s\n" % report["source"]["description"])
    out.write("model %s: %s %s (%s), input %dx%d (WxH)\n" % (
        model["path"], model["backend"], model["precision"], model["detail"],
        model["input_hw"][1], model["input_hw"][0]))
    limit = []
    if settings["frames"]:
        limit.append("%d frames" % settings["frames"])
    if settings["seconds"]:
        limit.append("%g s" % settings["seconds"])
    per = "per segment" if report["source"]["segments"] else "per run"
    out.write("sink %s, %s CPUs, %d inference thread(s) in the pipelined loop, %d repeat(s), "
              "%s: %s\n" % (settings["sink"], report["machine"]["cpus"], settings["workers"],
                            settings["repeat"], per, " or ".join(limit) or "every frame"))
    out.write("load average at start %s (other programs count too)\n\n"
              % _loads(report["machine"]["load_average_at_start"]))
    out.flush()


def _print_table(out, report):
    modes = report.get("modes", {})
    names = list(modes)
    width = 24
    rows = []  # type: List[List[str]]

    def row(label, cells):
        rows.append([label] + cells)

    def chunk_cell(m, i):
        chunks = modes[m].get("chunks", [])
        return _cell(chunks[i]["fps"]) if i < len(chunks) else "-"

    row("", names)
    row("end-to-end FPS", [_cell(modes[m].get("fps")) for m in names])
    for i, seg in enumerate(report["source"]["segments"]):
        row("  %d chars (from %d)" % (seg["targets"], seg["start_frame"]),
            [chunk_cell(m, i) for m in names])
    row("stage ms, median / p95", ["" for _ in names])
    for stage in STAGES:
        row("  " + STAGE_LABELS[stage],
            [_cell(modes[m].get("stages_ms", {}).get(stage), "%.2f") for m in names])
    row("  pre+decode+overlay", [_cell(modes[m].get("preprocess_decode_overlay_ms"), "%.2f")
                                 for m in names])
    row("    the same, CPU time", [_cell(modes[m].get("preprocess_decode_overlay_cpu_ms"),
                                         "%.2f") for m in names])
    for key, label in (("capture_to_display", "capture->display ms"),
                       ("read_to_display", "read->display ms")):
        row(label, [_cell(modes[m].get("latency_ms", {}).get(key)) for m in names])
    row("CPU ms per frame", [_cell(modes[m].get("cpu_ms_per_frame")) for m in names])
    row("frames measured", [str(modes[m].get("frames", "-")) for m in names])
    row("frames dropped", [str(modes[m].get("dropped", "-")) for m in names])
    for cells in rows:
        out.write(cells[0].ljust(width) + "".join(c.ljust(width) for c in cells[1:]).rstrip()
                  + "\n")
    for m in names:
        if "skipped" in modes[m]:
            out.write("%s: skipped - %s\n" % (m, modes[m]["skipped"]))
    t = report.get("targets", {})
    speed = t.get("pipelined_vs_sequential_fps", {})
    load = t.get("most_vs_fewest_characters_fps", {})
    post = t.get("preprocess_decode_overlay_median_ms", {})
    out.write("\ntargets (median, min-max over paired runs)\n")
    out.write("  pipelined / sequential FPS         %-24s target >= %.2fx  %s\n" % (
        _cell(speed.get("value"), "%.2fx"), TARGET_SPEEDUP, _met(speed.get("met"))))
    if speed.get("cpu_bound_ceiling"):
        label = "    ceiling, all %d CPUs busy" % speed["cpus"]
        out.write("%s%s\n" % (label.ljust(37), _cell(speed["cpu_bound_ceiling"], "%.2fx")))
    out.write("  FPS most / fewest characters       %-24s target >= %.2fx  %s\n" % (
        _cell(load.get("value"), "%.2fx"), TARGET_LOAD_RATIO, _met(load.get("met"))))
    out.write("  pre+decode+overlay median (wall)   %-24s target <= %.1f ms  %s\n" % (
        _ms_and_worst(post.get("value"), post.get("worst_run")), TARGET_POST_MS,
        _met(post.get("met"))))
    out.write("  pre+decode+overlay median (CPU)    %s\n" % _ms_and_worst(
        post.get("cpu_value"), post.get("cpu_worst_run")))
    out.write("load average at end %s\n" % _loads(report["machine"].get("load_average_at_end")))
    out.flush()


def _loads(values):
    return "unknown" if not values else " ".join("%.2f" % v for v in values)


def _ms_and_worst(value, worst):
    if value is None:
        return "-"
    return "%.2f ms%s" % (value, "" if worst is None else ", worst run %.2f" % worst)


def _met(flag):
    return "-" if flag is None else ("met" if flag else "NOT met")
