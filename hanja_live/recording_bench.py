"""What recording a live camera costs the loop: encoding in place against PacedRecorder.

    python -m hanja_live bench --recording [SOURCE] [--frames N] [--json OUT]

Frames of SOURCE (default: the demo clip) are handed to a recording at a live loop's pace
(``loop_fps``) from a camera declared at ``camera_fps``, twice in one run:
  in place: VideoSink.write on the loop's thread, one file frame per loop frame (the way a
            live recording was written before PacedRecorder);
  paced:    PacedRecorder.write (copy and hand over; encoding on its own thread).
For each: the loop thread's time per frame written or handed over (median, p95; a frame the
paced recorder drops because its encoder is busy costs the loop almost nothing and is left out
of these figures, and counted), and the file's length against the run's wall time: a file that
keeps the camera's clock lasts as long as the run did. The encoder thread's own CPU time is not
measured here; on a machine whose cores are all busy it still competes with inference.
"""

import json
import os
import shutil
import sys
import tempfile
import time

from .app import resolve_source_uri
from .errors import HanjaLiveError, SourceError
from .sinks import PacedRecorder, VideoSink
from .sinks.output_path import prepare_output_path
from .sources import open_source
from .stats import describe

MODES = ("in place", "paced")


def run_one(mode, src, frames, folder, camera_fps, loop_fps, progress=None):
    """One mode over ``frames`` frames of ``src``; returns its figures."""
    sink = VideoSink(os.path.join(folder, "%s.mp4" % mode.replace(" ", "_")), fps=camera_fps,
                     overwrite=True)
    recorder = PacedRecorder(sink) if mode == "paced" else sink
    spent = []  # ms on the loop's thread per write
    start = time.monotonic()
    with recorder:
        for i in range(frames):
            time.sleep(max(0.0, start + i / float(loop_fps) - time.monotonic()))
            frame = src.read()
            if frame is None:
                raise SourceError("%s ended after %d frames; ask for fewer --frames" % (src.description, i))
            dropped = getattr(recorder, "dropped", 0)
            t = time.perf_counter()
            recorder.write(frame.image, time.monotonic())
            if getattr(recorder, "dropped", 0) == dropped:
                spent.append((time.perf_counter() - t) * 1000.0)
            if progress:
                progress("bench --recording: %s %d/%d" % (mode, i + 1, frames))
        wall_s = time.monotonic() - start
    ms = describe(spent) or {"median": float("nan"), "p95": float("nan")}
    return {
        "mode": mode,
        "write_ms_median": ms["median"],
        "write_ms_p95": ms["p95"],
        "loop_frames": frames,
        "file_frames": sink.frames,
        "file_s": sink.frames / float(camera_fps),
        "wall_s": wall_s,
        "repeated": getattr(recorder, "repeated", 0),
        "dropped": getattr(recorder, "dropped", 0),
        "skipped": getattr(recorder, "skipped", 0),
    }


def run_recording_bench(source_uri="demo", frames=90, camera_fps=30.0, loop_fps=20.0,
                        json_path=None, overwrite=False, progress=True, out=None):
    """Both modes in one run on the same frames; prints a table, returns the report."""
    out = out or sys.stdout
    if not frames > 0 or not camera_fps > 0 or not loop_fps > 0:
        raise HanjaLiveError("bench --recording needs frames, camera fps and loop fps above 0")
    if json_path:
        prepare_output_path(json_path, overwrite, "benchmark report")
    uri = resolve_source_uri(source_uri)

    def say(text):
        if progress:
            sys.stderr.write("\r" + text)
            sys.stderr.flush()

    folder = tempfile.mkdtemp(prefix="hanja_bench_rec_")
    rows = []
    try:
        for mode in MODES:
            with open_source(uri, loop=True) as src:
                rows.append(run_one(mode, src, frames, folder, camera_fps, loop_fps, say))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if progress:
            sys.stderr.write("\n")
    base, paced = rows
    report = {"source": str(source_uri), "frames": frames, "camera_fps": camera_fps,
              "loop_fps": loop_fps, "rows": rows,
              "loop_time_ratio": base["write_ms_median"] / max(paced["write_ms_median"], 1e-9)}
    out.write("recording a %g fps camera from a %g fps loop, %d frames of %s\n"
              % (camera_fps, loop_fps, frames, source_uri))
    out.write("| | write on the loop's thread, median (p95) ms | file s / wall s | repeated | dropped |\n"
              "| --- | --- | --- | --- | --- |\n")
    for r in rows:
        out.write("| %s | %.2f (%.2f) | %.2f / %.2f | %d | %d |\n"
                  % (r["mode"], r["write_ms_median"], r["write_ms_p95"], r["file_s"], r["wall_s"],
                     r["repeated"], r["dropped"]))
    out.write("time on the loop's thread per frame, in place / paced: %.1fx\n"
              % report["loop_time_ratio"])
    if json_path:
        with open(json_path, "w") as f:
            json.dump(report, f, indent=1)
    return report
