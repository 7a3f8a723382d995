"""Endurance run: the real app (``python -m hanja_live run``) on a looping clip for many
frames, recording in segments and writing JSON lines, while this script samples the
process's resident memory and open file descriptors from /proc.

    .venv/bin/python tests/soak.py                      # 30,000 frames, tiny model
    .venv/bin/python tests/soak.py --frames 1500 --warmup 500
    .venv/bin/python tests/soak.py --model models/hanja_yolov5n.onnx --size 320x240
    .venv/bin/python tests/soak.py --source mjpeg --unplug-every 5000   # a network camera
                                                   # that drops out: the reconnect path

Passes (exit 0) when, after the warm-up, the RSS high-water mark of the last third of the
samples is less than --max-growth-mb above that of the first third, and open file
descriptors and threads did not grow; the app must also stop cleanly on SIGTERM with every
finished segment playable. The frame count is the number of JSON lines written (one per
frame, flushed at once).
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from live_process import LiveProcess, count_lines  # noqa: E402


def proc_status(pid):
    """(RSS in MB, threads) of process ``pid``."""
    rss = threads = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024.0
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def make_clip(path, frames, width, height):
    """A clip of numbered frames with something to detect on each."""
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (width, height))
    if not writer.isOpened():
        raise SystemExit("soak: OpenCV cannot write %s" % path)
    for i in range(frames):
        image = np.full((height, width, 3), 235, np.uint8)
        cv2.putText(image, str(i), (width // 8, height * 2 // 3), cv2.FONT_HERSHEY_SIMPLEX,
                    height / 80.0, (20, 20, 20), max(1, height // 40))
        writer.write(image)
    writer.release()
    return path


def make_tiny_model(path):
    from conftest import anchor_free_raw, make_constant_yolo_model
    raw = anchor_free_raw([(32, 32, 20, 10), (12, 12, 8, 8)], [2, 7], [0.9, 0.6])
    return make_constant_yolo_model(path, raw)


def segment_frames(folder):
    """(finished segments, frames in them, unfinished files, their fps) of the soak recording."""
    names = sorted(n for n in os.listdir(folder) if n.startswith("soak-"))
    finished = [n for n in names if ".part." not in n]
    frames, fps = 0, None
    for name in finished:
        capture = cv2.VideoCapture(os.path.join(folder, name))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = fps or capture.get(cv2.CAP_PROP_FPS)
        ok = capture.read()[0]
        capture.release()
        if not ok or count <= 0:
            raise AssertionError("segment %s does not play" % name)
        frames += count
    return finished, frames, [n for n in names if ".part." in n], fps


def slope_per_10k(points):
    """Least-squares growth of RSS in MB per 10,000 frames over (frames, rss) points."""
    if len(points) < 2:
        return 0.0
    x = np.array([p[0] for p in points], np.float64)
    y = np.array([p[1] for p in points], np.float64)
    return float(np.polyfit(x, y, 1)[0] * 10000.0)


SOURCES = ("file", "gst", "mjpeg")


def recorded_ok(source, recorded, lines, fps, seconds):
    """A file source records each frame shown (the last one may miss the file); a live one
    records on the camera's clock, about ``fps`` frames a second of the run (which also
    counts the start, before the first frame)."""
    if source == "file":
        return lines <= recorded <= lines + 1
    if not fps:
        return False  # no finished segment to read the rate from
    return 0.6 * fps * seconds <= recorded <= 1.05 * fps * seconds


def soak(frames=30000, warmup=3000, every=1000, model=None, size=(160, 120), clip_frames=300,
         segment_s=10.0, max_growth_mb=5.0, out=None, source="file", unplug_every=None,
         say=print):
    """Run the soak; returns a dict of the figures (``ok`` says whether it passed).

    source: "file" (a looping clip: the video file reader), "gst" (a GStreamer test pattern
    through the live grabber) or "mjpeg" (a network camera served from here; with
    ``unplug_every`` N it drops out for a second every N frames and must be reconnected).
    """
    out = out or tempfile.mkdtemp(prefix="hanja-soak-")
    os.makedirs(out, exist_ok=True)
    model = model or make_tiny_model(os.path.join(out, "tiny.onnx"))
    detections = os.path.join(out, "soak.jsonl")
    camera = None
    if source == "file":
        uri = make_clip(os.path.join(out, "loop.avi"), clip_frames, size[0], size[1])
    elif source == "gst":
        uri = ("gst:videotestsrc pattern=ball ! video/x-raw,width=%d,height=%d ! videoconvert "
               "! video/x-raw,format=BGR ! appsink sync=false" % size)
    else:
        from mjpeg_camera import MjpegCamera
        camera = MjpegCamera(fps=300.0, size=size)
        uri = camera.url()
    args = ["--source", uri, "--loop", "--headless", "--record", os.path.join(out, "soak.mp4"),
            "--record-segment", str(segment_s), "--json", detections, "--model", model, "-q"]
    say("soak: python -m hanja_live run %s" % " ".join(args))
    app = LiveProcess(*args, log_path=os.path.join(out, "app.log"))
    samples = []  # (frames, rss MB, fds, threads, seconds)
    started = time.monotonic()
    unplugs = 0
    try:
        target = every
        next_unplug = unplug_every or frames + 1
        while target <= frames:
            if camera is not None and next_unplug <= target and next_unplug < frames:
                app.wait_lines(detections, next_unplug)
                camera.unplug()
                time.sleep(1.0)
                camera.plug()
                unplugs += 1
                next_unplug += unplug_every
            app.wait_lines(detections, target)
            done = count_lines(detections)
            rss, threads = proc_status(app.pid)
            fds = open_fds(app.pid)
            elapsed = time.monotonic() - started
            samples.append((done, rss, fds, threads, elapsed))
            say("soak: %6d frames  %6.1f fps  RSS %7.1f MB  fds %3d  threads %2d"
                % (done, done / elapsed, rss, fds, threads))
            target += every
        app.send(signal.SIGTERM)
        code = app.finish()
        log = app.log()
    finally:
        app.close()
        if camera is not None:
            camera.close()
    after = [s for s in samples if s[0] >= warmup]
    base, last = after[0], after[-1]
    # RSS swings while the allocators hand memory back and take it again (ONNX Runtime's by
    # some 20 MB): compare the high-water marks of the first and the last third after the
    # warm-up, which a leak raises and a swing does not
    third = max(3, len(after) // 3)
    early, late = after[:third], after[-third:]
    growth = max(s[1] for s in late) - max(s[1] for s in early)
    finished, recorded, unfinished, record_fps = segment_frames(out)
    lines = count_lines(detections)
    result = {
        "frames": lines, "seconds": samples[-1][4], "fps": samples[-1][0] / samples[-1][4],
        "rss_warm_mb": base[1], "rss_end_mb": last[1], "rss_max_mb": max(s[1] for s in after),
        "rss_growth_mb": growth, "rss_slope_mb_per_10k": slope_per_10k([(s[0], s[1]) for s in after]),
        "fds_warm": base[2], "fds_end": last[2], "fds_max": max(s[2] for s in after),
        "threads_warm": base[3], "threads_end": last[3], "exit_code": code,
        "segments": len(finished), "recorded_frames": recorded, "unfinished": unfinished,
        "unplugs": unplugs, "reconnects": log.count("camera back after"), "out": out,
    }
    # a socket or a segment may be open at one sample and not the next: compare the most
    # open in the first and the last third, as for the memory
    result["fds_leak"] = max(s[2] for s in late) - max(s[2] for s in early)
    result["threads_leak"] = max(s[3] for s in late) - max(s[3] for s in early)
    result["ok"] = (growth < max_growth_mb and result["fds_leak"] <= 0
                    and result["threads_leak"] <= 0
                    and code == 128 + signal.SIGTERM and not unfinished
                    and recorded_ok(source, recorded, lines, record_fps, result["seconds"])
                    and result["reconnects"] == unplugs)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=30000)
    parser.add_argument("--warmup", type=int, default=3000, help="frames before the baseline")
    parser.add_argument("--every", type=int, default=1000, help="sample every N frames")
    parser.add_argument("--model", help="ONNX model (default: a tiny constant one, so that the "
                        "pipeline, not the network, is what runs)")
    parser.add_argument("--size", default="160x120", help="clip size WxH")
    parser.add_argument("--clip-frames", type=int, default=300, help="frames per loop")
    parser.add_argument("--segment", type=float, default=10.0, help="seconds per recording file")
    parser.add_argument("--max-growth-mb", type=float, default=5.0)
    parser.add_argument("--source", choices=SOURCES, default="file",
                        help="file: a looping clip; gst: a GStreamer test pattern through the "
                             "live grabber; mjpeg: a network camera served by this script")
    parser.add_argument("--unplug-every", type=int, metavar="N",
                        help="mjpeg: cut the camera for 1 s every N frames")
    parser.add_argument("--out", help="keep the files here (default: a temporary folder, "
                        "removed afterwards)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    result = soak(args.frames, args.warmup, args.every, args.model, (width, height),
                  args.clip_frames, args.segment, args.max_growth_mb, args.out, args.source,
                  args.unplug_every)
    print("soak: %(frames)d frames in %(seconds).0f s (%(fps).1f fps); RSS %(rss_warm_mb).1f MB "
          "after warm-up, %(rss_end_mb).1f MB at the end, highest %(rss_max_mb).1f MB; growth of "
          "the high-water mark from the first to the last third %(rss_growth_mb)+.2f MB (trend "
          "%(rss_slope_mb_per_10k)+.2f MB per 10k frames); fds "
          "%(fds_warm)d -> %(fds_end)d (max %(fds_max)d); threads %(threads_warm)d -> "
          "%(threads_end)d; exit %(exit_code)d after SIGTERM; %(segments)d segments holding "
          "%(recorded_frames)d frames; camera cut %(unplugs)d times, back %(reconnects)d times"
          % result)
    print("soak: %s" % ("PASS" if result["ok"] else "FAIL"))
    if not args.out:
        shutil.rmtree(result["out"], ignore_errors=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
