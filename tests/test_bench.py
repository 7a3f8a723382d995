"""`hanja_live bench` plumbing on a real small clip and image folder: the report's keys,
counts, run order, baselines and stage statistics — never its speed."""

import io
import json
import os
import textwrap

import cv2
import numpy as np
import pytest

from hanja_live.bench import MODES, STAGES, load_segments, run_bench, segments_path
from hanja_live.config import load_config
from hanja_live.errors import HanjaLiveError
from hanja_live.workers import usable_cpus

W, H = 160, 120


def page(i):
    image = np.full((H, W, 3), 210, np.uint8)
    cv2.putText(image, str(i), (50, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (30, 30, 30), 3)
    return image


def make_clip(tmp_path, count=40, segments=((0, 0, 19), (5, 20, 39))):
    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (W, H))
    assert writer.isOpened()
    for i in range(count):
        writer.write(page(i))
    writer.release()
    if segments:
        with open(segments_path(path), "w") as f:
            json.dump({"segments": [{"targets": t, "start_frame": a, "end_frame": b}
                                    for t, a, b in segments]}, f)
    return path


def make_folder(tmp_path, count=12):
    folder = tmp_path / "pages"
    folder.mkdir()
    for i in range(count):
        cv2.imwrite(str(folder / ("p%02d.png" % i)), page(i))
    return str(folder)


def model_config(path):
    # the tiny model boxes blank frames; a verifier would drop those boxes
    return load_config(None, {"model": {"path": path, "verifier": None}}).model


def ultralytics_importable():
    try:
        import ultralytics  # noqa: F401
    except ImportError:
        return False
    return True


def check_stats(stats):
    assert set(stats) == {"median", "p95", "mean", "n"}
    assert 0.0 <= stats["median"] <= stats["p95"]


@pytest.mark.parametrize("kind, chunk_frames, targets", [
    ("video", [20, 20], [0, 5]),  # two segments: each mode runs each of them
    ("folder", [12], [None]),  # no segments file: one chunk, the whole source
])
def test_report_plumbing(tmp_path, tiny_model, kind, chunk_frames, targets):
    source = make_clip(tmp_path) if kind == "video" else make_folder(tmp_path)
    out = io.StringIO()
    json_path = str(tmp_path / "bench.json")
    report = run_bench(source, model_config(tiny_model), repeat=2, sink="video",
                       json_path=json_path, warmup=2, progress=False, out=out,
                       command="python -m hanja_live bench test")
    with open(json_path, encoding="utf-8") as f:
        assert json.load(f) == json.loads(json.dumps(report))
    assert {"command", "source", "model", "machine", "settings", "modes", "targets",
            "runs"} <= set(report)
    assert report["command"] == "python -m hanja_live bench test"
    assert report["model"]["input_hw"] == [64, 64]
    # chunk by chunk, the modes take turns: A B C, C B A, A B C, ...
    chunks = len(chunk_frames)
    expected = []
    for turn in range(2 * chunks):
        expected += list(MODES) if turn % 2 == 0 else list(reversed(MODES))
    runs = report["runs"]
    assert [r["mode"] for r in runs] == expected
    assert [r["position"] for r in runs] == list(range(len(expected)))
    assert [r["targets"] for r in runs if r["mode"] == "sequential"] == targets * 2
    for mode in ("pipelined", "sequential"):
        summary = report["modes"][mode]
        total = 2 * sum(chunk_frames)
        assert summary["runs"] == 2 * chunks and summary["frames"] == total
        assert summary["dropped"] == 0
        assert summary["fps"]["n"] == 2
        assert summary["fps"]["min"] <= summary["fps"]["median"] <= summary["fps"]["max"]
        assert summary["cpu_ms_per_frame"]["median"] > 0
        assert set(summary["stages_ms"]) == set(STAGES)
        for stage in STAGES:
            check_stats(summary["stages_ms"][stage])
        assert summary["stages_ms"]["inference"]["n"] == total
        assert summary["stages_ms"]["sink"]["median"] > 0  # frames went into the mp4
        check_stats(summary["latency_ms"]["capture_to_display"])
        check_stats(summary["latency_ms"]["read_to_display"])
        check_stats(summary["preprocess_decode_overlay_cpu_ms"])
        assert [c["frames"] for c in summary["chunks"]] == [2 * n for n in chunk_frames]
        assert [c["targets"] for c in summary["chunks"]] == targets
        for run in (r for r in runs if r["mode"] == mode):
            assert run["frames"] == chunk_frames[run["chunk"]] and run["fps"] > 0
            assert run["detections"]["median"] == 1  # the tiny model sees one box per frame
    if not ultralytics_importable():
        skipped = report["modes"]["ultralytics"]["skipped"]
        assert "pip install ultralytics" in skipped
        assert "ultralytics: skipped - " in out.getvalue()
    # each ratio pairs the two modes on one chunk of one repeat
    ratios = []
    for k in (0, 1):
        for c in range(chunks):
            pair = {r["mode"]: r for r in runs if r["repeat"] == k and r["chunk"] == c}
            ratios.append(pair["pipelined"]["fps"] / pair["sequential"]["fps"])
    speed = report["targets"]["pipelined_vs_sequential_fps"]
    assert speed["value"]["n"] == 2 * chunks
    assert speed["value"]["min"] == pytest.approx(min(ratios))
    assert speed["value"]["max"] == pytest.approx(max(ratios))
    assert speed["target"] == 1.5 and isinstance(speed["met"], bool)
    # the ceiling: pipelined FPS with every CPU busy at its measured CPU time per frame
    assert speed["cpus"] == usable_cpus() >= 1
    ceilings = []
    for k in (0, 1):
        for c in range(chunks):
            pair = {r["mode"]: r for r in runs if r["repeat"] == k and r["chunk"] == c}
            ceilings.append(speed["cpus"] * 1000.0 / pair["pipelined"]["cpu_ms_per_frame"]
                            / pair["sequential"]["fps"])
    assert speed["cpu_bound_ceiling"]["min"] == pytest.approx(min(ceilings))
    assert speed["cpu_bound_ceiling"]["max"] == pytest.approx(max(ceilings))
    assert "ceiling, all %d CPUs busy" % speed["cpus"] in out.getvalue()
    load = report["targets"]["most_vs_fewest_characters_fps"]
    if chunks == 2:
        per_repeat = []
        for k in (0, 1):
            fps = {r["chunk"]: r["fps"] for r in runs if r["mode"] == "pipelined"
                   and r["repeat"] == k}
            per_repeat.append(fps[1] / fps[0])
        assert load["value"]["min"] == pytest.approx(min(per_repeat))
    else:
        assert load["value"] is None and load["met"] is None
    post = report["targets"]["preprocess_decode_overlay_median_ms"]
    assert post["value"] > 0 and post["cpu_value"] > 0 and post["target"] == 3.0
    text = out.getvalue()
    assert "end-to-end FPS" in text and "targets" in text
    if chunks == 2:
        assert "0 chars (from 0)" in text and "5 chars (from 20)" in text


@pytest.mark.parametrize("frames, seconds, workers", [(7, None, 1), (None, 0.001, 1),
                                                     (9, None, 2)])
def test_limits_per_run(tmp_path, tiny_model, frames, seconds, workers):
    report = run_bench(make_clip(tmp_path), model_config(tiny_model), frames=frames,
                       seconds=seconds, sink="null", warmup=0, progress=False,
                       modes=("pipelined", "sequential"), out=io.StringIO(), workers=workers)
    assert report["settings"]["workers"] == workers
    assert len(report["runs"]) == 4  # two modes on two segments
    for run in report["runs"]:
        if frames is not None:
            assert run["frames"] == frames
        else:
            # a run ends at its first frame past the limit, long before its segment's 20
            assert 2 <= run["frames"] < 20
            assert (run["frames"] - 1) / run["fps"] >= seconds
    assert report["settings"]["sink"] == "null"


@pytest.mark.parametrize("kwargs, needle", [
    ({"repeat": 0}, "--repeat must be at least 1"),
    ({"workers": -1}, "--workers must be 0 (as many as the app runs) or more"),
    ({"frames": 0}, "--frames must be > 0"),
    ({"seconds": -1.0}, "--seconds must be > 0"),
    ({"sink": "screen"}, "--sink must be one of null, video"),
    ({"modes": ("pipelined", "turbo")}, "modes must be some of"),
    ({"json_path": "EXISTING"}, "already exists; pass --overwrite"),
])
def test_bad_settings_are_one_line_errors(tmp_path, tiny_model, kwargs, needle):
    if kwargs.get("json_path") == "EXISTING":
        existing = tmp_path / "old.json"
        existing.write_text("{}")
        kwargs = {"json_path": str(existing)}
    with pytest.raises(HanjaLiveError) as raised:
        run_bench(make_clip(tmp_path), model_config(tiny_model), progress=False,
                  out=io.StringIO(), **kwargs)
    assert needle in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("content, error", [
    ('{"segments": [{"targets": 0, "start_frame": 0, "end_frame": 9}]}', None),
    ('{"segments": [{"targets": 0}]}', "cannot read the segments file"),
    ("not json", "cannot read the segments file"),
])
def test_segments_file(tmp_path, content, error):
    clip = str(tmp_path / "c.mp4")
    with open(segments_path(clip), "w") as f:
        f.write(content)
    if error is None:
        assert load_segments(clip) == [{"targets": 0, "start_frame": 0, "end_frame": 9}]
    else:
        with pytest.raises(HanjaLiveError, match=error):
            load_segments(clip)
    assert load_segments(str(tmp_path / "other.mp4")) == []


def test_bundled_demo_segments_describe_the_four_loads():
    from hanja_live import paths
    segments = load_segments(paths.DEMO_CLIP)
    assert [s["targets"] for s in segments] == [0, 5, 20, 40]


def test_cli_bench_writes_json(tmp_path, tiny_model, run_cli):
    clip = make_clip(tmp_path)
    out = tmp_path / "b.json"
    result = run_cli("bench", clip, "--frames", 5, "--modes", "pipelined,sequential",
                     "--sink", "null", "--warmup", 1, "--json", out, "--model", tiny_model)
    assert result.returncode == 0, result.stderr
    assert "end-to-end FPS" in result.stdout
    assert "[1/4] pipelined 0 chars" in result.stderr  # progress goes to stderr
    report = json.loads(out.read_text())
    assert [r["frames"] for r in report["runs"]] == [5, 5, 5, 5]
    assert report["command"].startswith("python -m hanja_live bench ")
    again = run_cli("bench", clip, "--frames", 5, "--json", out, "--model", tiny_model)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_cli_bench_names_a_wide_input_width_first(tmp_path, wide_model, run_cli):
    result = run_cli("bench", make_clip(tmp_path), "--frames", 2, "--modes", "sequential", "--sink", "null",
                     "--warmup", 0, "--model", wide_model)
    assert result.returncode == 0, result.stderr
    assert "input 96x64 (WxH)" in result.stdout


# A stand-in for the ultralytics package (absent here, and too heavy for CI: it brings
# torch), with the parts of its documented interface the bench uses: YOLO(path, task),
# predict(source=BGR array, imgsz, conf, iou, max_det, verbose) returning a list of Results
# with .speed (ms), .boxes and .plot().
FAKE_ULTRALYTICS = textwrap.dedent('''
    import cv2
    import numpy as np

    CALLS = []


    class Boxes(object):
        def __len__(self):
            return 1


    class Results(object):
        def __init__(self, image):
            self.orig_img = image
            self.boxes = Boxes()
            self.speed = {"preprocess": 0.5, "inference": 2.0, "postprocess": 0.25}

        def plot(self):
            return self.orig_img.copy()


    class YOLO(object):
        def __init__(self, model, task=None):
            CALLS.append(("YOLO", model, task))

        def predict(self, source=None, stream=False, **settings):
            CALLS.append(("predict", "array" if isinstance(source, np.ndarray) else source,
                          stream, settings))
            if isinstance(source, np.ndarray):
                return [Results(source)]
            return self._frames(source) if stream else list(self._frames(source))

        def _frames(self, source):
            capture = cv2.VideoCapture(source)
            while True:
                ok, image = capture.read()
                if not ok:
                    break
                yield Results(image)
            capture.release()
''')


def test_ultralytics_baseline_code_path(tmp_path, tiny_model, monkeypatch):
    if ultralytics_importable():
        pytest.skip("the real ultralytics is installed; the stand-in would hide it")
    package = tmp_path / "fake" / "ultralytics"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(FAKE_ULTRALYTICS)
    monkeypatch.syspath_prepend(str(tmp_path / "fake"))
    clip = make_clip(tmp_path)
    report = run_bench(clip, model_config(tiny_model), modes=("ultralytics",), sink="video",
                       warmup=0, progress=False, out=io.StringIO())
    import ultralytics
    try:
        summary = report["modes"]["ultralytics"]
        assert summary["frames"] == 40 and summary["fps"]["median"] > 0
        assert summary["stages_ms"]["inference"]["median"] == 2.0
        assert summary["stages_ms"]["decode_nms"]["median"] == 0.25
        assert [c["frames"] for c in summary["chunks"]] == [20, 20]
        kinds = [c[0] for c in ultralytics.CALLS]
        assert kinds == ["YOLO"] + ["predict"] * (1 + 40)  # a warm-up, then every frame
        assert ultralytics.CALLS[0][1] == tiny_model and ultralytics.CALLS[0][2] == "detect"
        _, source, stream, settings = ultralytics.CALLS[-1]
        assert source == "array" and stream is False
        model = model_config(tiny_model)  # the baseline runs at the app's thresholds
        assert settings["imgsz"] == [64, 64] and settings["conf"] == model.conf
        assert (settings["iou"], settings["max_det"]) == (model.iou, model.max_det)
    finally:
        del ultralytics.CALLS[:]
        monkeypatch.delitem(__import__("sys").modules, "ultralytics")


def test_recording_bench_plumbing(tmp_path, run_cli):
    # a 40 fps loop against a 60 fps camera: the paced file holds more frames than the loop
    # made (repeats), the in-place file exactly one per loop frame
    from hanja_live.recording_bench import run_recording_bench

    clip = make_clip(tmp_path)
    out = io.StringIO()
    report = run_recording_bench(clip, frames=12, camera_fps=60.0, loop_fps=40.0,
                                 json_path=str(tmp_path / "r.json"), progress=False, out=out)
    in_place, paced = report["rows"]
    assert (in_place["mode"], paced["mode"]) == ("in place", "paced")
    assert in_place["file_frames"] == in_place["loop_frames"] == 12 and in_place["repeated"] == 0
    assert paced["file_frames"] == 12 - paced["dropped"] - paced["skipped"] + paced["repeated"] > 12
    assert report["loop_time_ratio"] > 0 and "in place / paced" in out.getvalue()
    assert json.loads((tmp_path / "r.json").read_text())["rows"][1]["mode"] == "paced"
    result = run_cli("bench", "--recording", clip, "--frames", 4, "--json", tmp_path / "r.json")
    assert result.returncode == 2 and "already exists" in result.stderr
    for args in ((tmp_path / "absent.mp4", "--frames", 4), (clip, "--frames", 0)):
        result = run_cli("bench", "--recording", *args)
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
