"""The CLI end to end, in a subprocess: outputs on real files, and one clear line per user error."""

import json
import os

import cv2
import numpy as np
import pytest

from conftest import write_video

from hanja_live.config import load_config


def _images(folder, sizes):
    os.makedirs(str(folder), exist_ok=True)
    for i, (w, h) in enumerate(sizes):
        img = np.full((h, w, 3), 200, np.uint8)
        cv2.putText(img, str(i), (5, h - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        cv2.imwrite(str(folder / ("img_%02d.png" % i)), img)
    return str(folder)


def test_detect_folder_writes_json_lines_in_original_pixels(tmp_path, tiny_model, run_cli):
    folder = _images(tmp_path / "imgs", [(128, 64), (64, 64), (64, 128)])
    out = tmp_path / "det.jsonl"
    proc = run_cli("detect", folder, "--json", out, "--conf", "0.001", "--model", tiny_model,
                  "--no-verifier")  # the tiny model boxes blank paper, which a verifier rejects
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["image"] for r in rows] == ["img_00.png", "img_01.png", "img_02.png"]
    # Model box: centre (32, 32), 20x10 in the 64x64 input. 128x64 -> scale 0.5, pad_y 16.
    expected = {"img_00.png": [44, 22, 84, 42], "img_01.png": [22, 27, 42, 37],
                "img_02.png": [12, 54, 52, 74]}
    for row in rows:
        (det,) = row["detections"]
        assert det["cls"] == 2 and det["label"] == "三"
        assert det["conf"] == pytest.approx(0.9, abs=1e-3)
        assert det["box"] == pytest.approx(expected[row["image"]], abs=1.0)


def test_detect_video_writes_one_line_per_frame_and_a_playable_video(tmp_path, tiny_model, run_cli):
    frames = [np.full((120, 160, 3), 20 * i, np.uint8) for i in range(7)]
    video = write_video(tmp_path / "clip.avi", frames)
    out_json, out_mp4 = tmp_path / "d.jsonl", tmp_path / "d.mp4"
    proc = run_cli("detect", video, "--json", out_json, "--record", out_mp4, "--model", tiny_model)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out_json.read_text(encoding="utf-8").splitlines()]
    assert [r["frame"] for r in rows] == list(range(7))
    cap = cv2.VideoCapture(str(out_mp4))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 7


def test_headless_run_records_annotated_video(tmp_path, tiny_model, run_cli):
    frames = [np.full((64, 128, 3), 240, np.uint8) for _ in range(5)]
    video = write_video(tmp_path / "in.avi", frames)
    out = tmp_path / "out.mp4"
    proc = run_cli("--source", video, "--headless", "--record", out, "--model", tiny_model, "--no-verifier")
    assert proc.returncode == 0, proc.stderr
    cap = cv2.VideoCapture(str(out))
    ok, first = cap.read()
    assert ok and first.shape == (64, 128, 3)
    # the box (44, 22)-(84, 42) is drawn: its left edge is coloured, the far corner is paper
    edge = first[32, 43:46].astype(int)
    assert np.abs(edge - 240).max() > 60
    assert np.abs(first[60, 124].astype(int) - 240).max() < 30


def _one_error_line(proc):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [l for l in proc.stderr.splitlines() if l.startswith("hanja_live: error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.mark.parametrize(
    "case, args, needle",
    [
        ("missing model", ["--source", "{video}", "--headless", "--model", "{tmp}/nope.onnx"],
         "model file not found"),
        ("corrupt model", ["--source", "{video}", "--headless", "--model", "{corrupt}"], "{corrupt}"),
        ("missing camera", ["--camera", "57", "--headless", "--model", "{model}"], "camera 57"),
        ("missing source file", ["--source", "{tmp}/none.mp4", "--headless", "--model", "{model}"],
         "none.mp4"),
        ("unwritable record", ["--source", "{video}", "--record", "/proc/nope/out.mp4",
                               "--model", "{model}"], "/proc/nope/out.mp4"),
        ("unwritable json", ["detect", "{video}", "--json", "/proc/nope/d.jsonl",
                             "--model", "{model}"], "/proc/nope/d.jsonl"),
        ("bad config", ["--config", "{badconfig}", "--headless"], "conff"),
        ("detect without output", ["detect", "{video}", "--model", "{model}"], "--json"),
    ],
)
def test_user_errors_give_one_clear_line(tmp_path, tiny_model, run_cli, case, args, needle):
    video = write_video(tmp_path / "v.avi", [np.zeros((48, 64, 3), np.uint8)] * 2)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(open(tiny_model, "rb").read()[:100])
    badconfig = tmp_path / "bad.yaml"
    badconfig.write_text("model:\n  conff: 0.3\n")
    fill = {"video": video, "tmp": str(tmp_path), "model": tiny_model, "corrupt": str(corrupt),
            "badconfig": str(badconfig)}
    proc = run_cli(*[a.format(**fill) for a in args], timeout=60)
    line = _one_error_line(proc)
    assert needle.format(**fill) in line, (case, proc.stderr)


def test_existing_output_is_not_overwritten_unless_asked(tmp_path, tiny_model, run_cli):
    video = write_video(tmp_path / "v.avi", [np.zeros((48, 64, 3), np.uint8)] * 2)
    out = tmp_path / "keep.jsonl"
    out.write_text("precious\n")
    proc = run_cli("detect", video, "--json", out, "--model", tiny_model)
    assert "--overwrite" in _one_error_line(proc)
    assert out.read_text() == "precious\n"
    proc = run_cli("detect", video, "--json", out, "--model", tiny_model, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert len(out.read_text().splitlines()) == 2


@pytest.mark.parametrize("command", ["run", "detect"])
def test_help_names_the_thresholds_of_the_packaged_config(run_cli, command):
    model = load_config().model
    proc = run_cli(command, "-h")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())  # argparse wraps lines
    for expected in ("score threshold (default %g)" % model.conf, "NMS IoU threshold (default %g)" % model.iou,
                     "most detections per frame (default %d)" % model.max_det):
        assert expected in text
