"""Capture sources on real parts: video files written and read back, image folders on disk,
real GStreamer pipelines (videotestsrc) through the live grabber, a real HTTP stream."""

import functools
import http.server
import logging
import os
import shutil
import subprocess
import sys
import threading
import weakref

import cv2
import numpy as np
import pytest

from hanja_live.errors import EndOfStream, SourceError
from hanja_live.sources import (BufferPool, JetsonUtilsCapture, LiveSource, csi_pipeline,
                                gstreamer_status, jetson_utils_argv, mask_credentials,
                                natural_key, open_source, parse_uri)
from hanja_live.sources.csi import import_jetson_utils
from hanja_live.sources.opencv_capture import on_jetson, open_camera

from numbered_frames import H, W, frame_number, numbered_frame


def write_video(path, count, fourcc, fps=10.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (W, H))
    if not writer.isOpened():
        pytest.skip("this OpenCV cannot write %s with %s" % (path.name, fourcc))
    for i in range(count):
        writer.write(numbered_frame(i))
    writer.release()
    return str(path)


def read_all(source, limit=1000):
    """Frames until EndOfStream; a None (live source between frames) just reads again."""
    frames = []
    for _ in range(limit):
        try:
            frame = source.read(timeout=5.0)
        except EndOfStream:
            return frames
        if frame is not None:
            frames.append(frame)
    raise AssertionError("no end after %d reads" % limit)


def gst_available(*elements):
    usable, said = gstreamer_status()
    if not usable:
        return False, "cv2 was built without GStreamer (GStreamer: %s)" % said
    tool = shutil.which("gst-inspect-1.0")
    for name in elements:
        if tool and subprocess.call([tool, "--exists", name]) != 0:
            return False, "GStreamer element %s is not installed" % name
    return True, ""


_GST_OK, _GST_WHY = gst_available("videotestsrc", "videoconvert", "appsink")
needs_gst = pytest.mark.skipif(not _GST_OK, reason=_GST_WHY)

TEST_PIPELINE = ("videotestsrc num-buffers=30 pattern=ball ! video/x-raw,width=320,height=240,"
                 "framerate=30/1 ! videoconvert ! video/x-raw,format=BGR ! appsink")


# --- source strings -----------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path):
    (tmp_path / "clip.avi").write_bytes(b"x")
    (tmp_path / "scan.PNG").write_bytes(b"x")
    (tmp_path / "pages").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "uri, expected",
    [
        (0, ("camera", 0)),
        ("1", ("camera", 1)),
        (" 2 ", ("camera", 2)),
        ("/dev/video3", ("camera", "/dev/video3")),
        ("/dev/v4l/by-id/usb-cam-video-index0", ("camera", "/dev/v4l/by-id/usb-cam-video-index0")),
        ("csi://1", ("csi", 1)),
        ("gst:videotestsrc ! appsink", ("gstreamer", "videotestsrc ! appsink")),
        ("videotestsrc ! appsink", ("gstreamer", "videotestsrc ! appsink")),
        ("rtsp://cam.local:554/s", ("stream", "rtsp://cam.local:554/s")),
        ("HTTPS://cam/video.mjpg", ("stream", "HTTPS://cam/video.mjpg")),
        ("{tmp}/clip.avi", ("video", "{tmp}/clip.avi")),
        ("file://{tmp}/clip.avi", ("video", "{tmp}/clip.avi")),
        ("{tmp}/scan.PNG", ("image", "{tmp}/scan.PNG")),
        ("{tmp}/pages", ("folder", "{tmp}/pages")),
        (-1, "camera index -1 is negative"),
        ("-2", "camera index -2 is negative"),
        (True, "must be a camera number or a string"),
        (None, "must be a camera number or a string"),
        ("  ", "the source is empty"),
        ("csi://front", "csi://N with N the sensor number"),
        ("ftp://user:pw@host/x", "unknown source kind 'ftp://'"),
        ("{tmp}/missing.mp4", "no such file or folder: {tmp}/missing.mp4"),
    ],
)
def test_parse_uri(tree, uri, expected):
    def fill(value):
        return value.replace("{tmp}", str(tree)) if isinstance(value, str) else value

    uri = fill(uri)
    if isinstance(expected, str):
        with pytest.raises(SourceError) as info:
            parse_uri(uri)
        assert fill(expected) in str(info.value)
        assert "pw" not in str(info.value)
    else:
        spec = parse_uri(uri)
        assert (spec.kind, spec.target) == tuple(fill(v) for v in expected)


@pytest.mark.parametrize(
    "text, masked",
    [
        ("rtsp://admin:hunter2@192.168.1.10:554/Streaming/101",
         "rtsp://admin:***@192.168.1.10:554/Streaming/101"),
        ("rtsp://admin:p@ss@cam/live", "rtsp://admin:***@cam/live"),
        ("http://user:@cam/x", "http://user:***@cam/x"),
        ("http://cam:8080/video?user=a&password=s3cret&res=hd",
         "http://cam:8080/video?user=a&password=***&res=hd"),
        ("https://cam/feed?token=abc123", "https://cam/feed?token=***"),
        ("rtspsrc location=rtsp://u:pw@h/s latency=0 ! decodebin ! appsink",
         "rtspsrc location=rtsp://u:***@h/s latency=0 ! decodebin ! appsink"),
        ("rtsp://user@cam/s", "rtsp://user@cam/s"),
        ("http://cam:8080/path@x", "http://cam:8080/path@x"),
        ("/videos/a:b@c.mp4", "/videos/a:b@c.mp4"),
    ],
)
def test_mask_credentials(text, masked):
    assert mask_credentials(text) == masked


@pytest.mark.parametrize(
    "name_order",
    [
        ["p1.jpg", "p2.png", "p10.png", "p100.png"],
        ["a.png", "B.png", "c.png"],
        ["img_2_1.png", "img_2_10.png", "img_10_1.png"],
        ["0.png", "00.png", "1.png"],
    ],
)
def test_natural_order(name_order):
    assert sorted(reversed(name_order), key=natural_key) == name_order


# --- CSI ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(), "nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720,"
                 "framerate=30/1 ! nvvidconv flip-method=0 ! video/x-raw,format=BGRx ! "
                 "videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1"),
        (dict(sensor_id=1, width=1920, height=1080, fps=60, flip=2),
         "nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM),width=1920,height=1080,"
         "framerate=60/1 ! nvvidconv flip-method=2 ! video/x-raw,format=BGRx ! "
         "videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1"),
        (dict(width=640, height=480, fps=15, flip=7), "width=640,height=480,framerate=15/1 ! "
                                                     "nvvidconv flip-method=7 !"),
        (dict(flip=8), "csi_flip must be 0..7"),
        (dict(flip=-1), "csi_flip must be 0..7"),
        (dict(flip=True), "csi_flip must be 0..7"),
        (dict(flip="2"), "csi_flip must be 0..7"),
        (dict(sensor_id=-1), "sensor id must be a whole number >= 0"),
        (dict(width=0), "width must be a whole number >= 1"),
        (dict(fps=29.97), "fps must be a whole number >= 1"),
    ],
)
def test_csi_pipeline(kwargs, expected):
    if "must" in expected:
        with pytest.raises(SourceError, match=expected.replace(".", r"\.")):
            csi_pipeline(**kwargs)
    else:
        assert expected in csi_pipeline(**kwargs)


@pytest.mark.parametrize(
    "flip, expected_flag",
    [(0, "--input-flip=rotate-180"), (2, "--input-flip=none"), (1, "--input-flip=counterclockwise"),
     (4, "--input-flip=horizontal"), (6, "--input-flip=vertical"), (9, None)],
)
def test_jetson_utils_flip_undoes_its_swap(flip, expected_flag):
    if expected_flag is None:
        with pytest.raises(SourceError, match="csi_flip must be 0..7"):
            jetson_utils_argv(flip=flip)
        return
    argv = jetson_utils_argv(width=640, height=480, fps=15, flip=flip)
    assert argv == ["--input-width=640", "--input-height=480", "--input-rate=15", expected_flag]


class StandInJetsonUtils(object):
    """Stands in for NVIDIA's jetson_utils (not installable off a Jetson): a videoSource whose
    Capture() plays a script of RGB frames, timeouts (None) and failures (Exception)."""

    def __init__(self, script):
        self.script = list(script)
        self.opened = []

    def videoSource(self, uri, argv):
        self.opened.append((uri, argv))
        return self

    def Capture(self, format, timeout):
        assert (format, timeout) == ("rgb8", 1000)
        step = self.script.pop(0) if self.script else "fail"
        if isinstance(step, str):
            raise Exception("jetson.utils -- videoSource failed to capture image")
        return step

    def cudaToNumpy(self, image):
        return image

    def cudaDeviceSynchronize(self):
        pass

    def GetWidth(self):
        return W

    def GetHeight(self):
        return H

    def GetFrameRate(self):
        return 30.0

    def Close(self):
        pass


def test_jetson_utils_capture_through_grabber():
    rgb = [numbered_frame(i)[:, :, ::-1].copy() for i in range(2)]
    for image in rgb:
        image[:2, :2] = (200, 100, 0)  # R, G, B
    module = StandInJetsonUtils([rgb[0], None, "fail", rgb[1]])
    capture = JetsonUtilsCapture(module, 1, W, H, 30, 0)
    assert module.opened == [("csi://1", jetson_utils_argv(W, H, 30, 0))]
    assert "CSI camera 1 via jetson_utils" in capture.description and capture.fps == 30.0
    frames = []
    with LiveSource(capture, max_failures=3, retry_delay_s=0.01) as src:
        with pytest.raises(SourceError) as info:
            for _ in range(100):
                frame = src.read(timeout=5.0)
                if frame is not None:
                    frames.append(frame)
    assert frames and len(frames) + src.dropped == 2
    for frame in frames:
        assert frame_number(frame.image) == frame.index
        assert tuple(frame.image[0, 0]) == (0, 100, 200)  # B, G, R
    message = str(info.value)
    assert "stopped delivering frames after 2 (3 reads failed in a row" in message
    assert "videoSource failed to capture image" in message and "nvargus-daemon" in message


@pytest.mark.skipif(on_jetson() or import_jetson_utils() is not None,
                    reason="a real CSI stack is present; this checks the error off a Jetson")
def test_csi_off_jetson_says_what_is_missing():
    with pytest.raises(SourceError, match="csi://0 needs a Jetson .*--camera N"):
        open_source("csi://0")


# --- video files --------------------------------------------------------------------------

@pytest.mark.parametrize("name, fourcc", [("clip.avi", "MJPG"), ("clip.mp4", "mp4v")])
def test_video_file_every_frame_in_order(tmp_path, name, fourcc):
    path = write_video(tmp_path / name, 12, fourcc)
    with open_source(path) as src:
        assert not src.is_live and src.fps == pytest.approx(10.0)
        assert path in src.description and "12 frames" in src.description
        frames = read_all(src)
        with pytest.raises(EndOfStream):
            src.read()
    assert [f.index for f in frames] == list(range(12))
    # all frames are held at once here: none was decoded over while the reader kept it
    assert [frame_number(f.image) for f in frames] == list(range(12))
    assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(f.name is None for f in frames) and src.dropped == 0


def test_video_file_loop_keeps_counting(tmp_path):
    path = write_video(tmp_path / "three.avi", 3, "MJPG")
    with open_source(path, loop=True) as src:
        frames = [src.read(timeout=5.0) for _ in range(7)]
    assert [f.index for f in frames] == list(range(7))
    assert [frame_number(f.image) for f in frames] == [0, 1, 2, 0, 1, 2, 0]


def test_video_file_reuses_buffers_the_reader_let_go(tmp_path):
    path = write_video(tmp_path / "clip.avi", 30, "MJPG")
    seen = []
    reused = 0
    with open_source(path) as src:
        while True:
            try:
                frame = src.read(timeout=5.0)
            except EndOfStream:
                break
            assert frame_number(frame.image) == frame.index
            reused += any(ref() is frame.image for ref in seen)
            seen.append(weakref.ref(frame.image))
            del frame
    assert reused > 0


def test_video_file_close_early_stops_the_decoder(tmp_path):
    path = write_video(tmp_path / "clip.avi", 30, "MJPG")
    src = open_source(path)
    assert src.read(timeout=5.0).index == 0
    src.close()
    src.close()
    with pytest.raises(EndOfStream):
        src.read()
    assert not src._thread.is_alive()


# --- images -------------------------------------------------------------------------------

def test_image_folder_natural_order_names_and_corrupt_skipped(tmp_path, caplog):
    folder = tmp_path / "pages"
    folder.mkdir()
    for number, name in [(10, "p10.png"), (2, "p2.png"), (1, "p1.jpg"), (3, "p3.bmp")]:
        cv2.imwrite(str(folder / name), numbered_frame(number))
    (folder / "p2b.png").write_bytes(b"\x89PNG this is not a png")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"junk")
    (folder / "sub").mkdir()
    cv2.imwrite(str(folder / "sub" / "p0.png"), numbered_frame(0))
    with caplog.at_level(logging.WARNING), open_source(str(folder)) as src:
        assert not src.is_live and "5 images" in src.description
        frames = read_all(src)
        with pytest.raises(EndOfStream):
            src.read()
    assert [f.name for f in frames] == ["p1.jpg", "p2.png", "p3.bmp", "p10.png"]
    assert [frame_number(f.image) for f in frames] == [1, 2, 3, 10]
    assert [f.index for f in frames] == [0, 1, 3, 4]  # p2b.png, the corrupt one, was 2
    assert src.skipped == 1
    assert any("p2b.png" in r.getMessage() for r in caplog.records)


def test_image_folder_loop_tries_a_corrupt_file_once(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), numbered_frame(7))
    (tmp_path / "b.png").write_bytes(b"not a png")
    with open_source(str(tmp_path), loop=True) as src:
        frames = [src.read() for _ in range(3)]
    assert [(f.name, f.index, frame_number(f.image)) for f in frames] == [
        ("a.png", 0, 7), ("a.png", 2, 7), ("a.png", 4, 7)]
    assert src.skipped == 1


def test_single_image_one_frame_then_end(tmp_path):
    path = tmp_path / "scan.png"
    cv2.imwrite(str(path), numbered_frame(5))
    with open_source(str(path)) as src:
        frame = src.read()
        with pytest.raises(EndOfStream):
            src.read()
    assert (frame.name, frame.index, frame_number(frame.image)) == ("scan.png", 0, 5)


def test_single_image_loop_hands_out_clean_copies(tmp_path):
    path = tmp_path / "scan.png"
    cv2.imwrite(str(path), numbered_frame(5))
    with open_source(str(path), loop=True) as src:
        first = src.read()
        first.image[:] = 0  # a reader drawing on its frame
        second = src.read()
    assert (first.index, second.index) == (0, 1)
    assert frame_number(second.image) == 5


@pytest.mark.parametrize(
    "make, needle, when",
    [
        (lambda d: d / "nope.mp4", "no such file or folder: {path}", "open"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "no images in folder {path}", "open"),
        (lambda d: ((d / "txt").mkdir(), (d / "txt" / "a.txt").write_text("x"), d / "txt")[-1],
         "no images in folder {path}", "open"),
        (lambda d: (d / "bad.mp4").write_text("not a video\n" * 20) and d / "bad.mp4",
         "cannot decode {path}: not a video OpenCV can read", "open"),
        (lambda d: (d / "cut.avi").write_bytes(b"RIFF\x00\x00") and d / "cut.avi",
         "cannot decode {path}: not a video OpenCV can read", "open"),
        (lambda d: (d / "bad.jpg").write_bytes(b"\xff\xd8 broken") and d / "bad.jpg",
         "cannot decode {path}: not an image OpenCV can read", "open"),
        (lambda d: (d / "zero.png").write_bytes(b"") or d / "zero.png",
         "cannot decode {path}: not an image OpenCV can read", "open"),
        (lambda d: ((d / "junk").mkdir(), (d / "junk" / "a.png").write_bytes(b"no"),
                    (d / "junk" / "b.jpg").write_bytes(b"no"), d / "junk")[-1],
         "none of the 2 image files in folder {path} could be decoded", "read"),
    ],
)
def test_unusable_files_raise_source_error(tmp_path, make, needle, when):
    path = str(make(tmp_path))
    with pytest.raises(SourceError) as info:
        src = open_source(path)
        assert when == "read", "open_source should have refused %s" % path
        src.read()
    assert needle.format(path=path) in str(info.value)
    assert "\n" not in str(info.value)


# --- cameras and streams ------------------------------------------------------------------

@pytest.mark.parametrize("uri", [99, "99", "/dev/video99"])
def test_missing_camera_fails_at_once(uri):
    if os.path.exists("/dev/video99"):
        pytest.skip("this machine has a /dev/video99")
    if not os.path.isdir("/dev") or not sys.platform.startswith("linux"):
        pytest.skip("the device-node check is Linux only")
    with pytest.raises(SourceError) as info:
        open_source(uri)
    message = str(info.value)
    assert message.startswith("camera ") and "/dev/video99 does not exist" in message
    assert "ls /dev/video*" in message and "--source FILE" in message


def test_device_that_is_no_camera_named():
    if not os.path.exists("/dev/null") or not sys.platform.startswith("linux"):
        pytest.skip("needs Linux's /dev/null")
    with pytest.raises(SourceError, match="camera /dev/null could not be opened: /dev/null is "
                                          "busy or not a capture device"):
        open_camera("/dev/null")


def test_unreachable_stream_error_hides_password():
    with pytest.raises(SourceError) as info:
        open_source("rtsp://admin:hunter2@127.0.0.1:9/live")  # port 9: nobody listens
    assert "rtsp://admin:***@127.0.0.1:9/live" in str(info.value)
    assert "hunter2" not in str(info.value)


@pytest.fixture
def http_server(tmp_path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_http_stream_through_the_grabber(tmp_path, http_server):
    write_video(tmp_path / "clip.avi", 20, "MJPG")
    with open_source("http://viewer:s3cret@%s/clip.avi" % http_server) as src:
        assert src.is_live
        assert "viewer:***@" in src.description and "s3cret" not in src.description
        frames = read_all(src)
    assert frames and src.captured == 20
    # the grabber's capture count is the position in the file: the drawn number
    assert [frame_number(f.image) for f in frames] == [f.index for f in frames]
    assert len(frames) + src.dropped == 20


# --- GStreamer through the live grabber -----------------------------------------------------

@needs_gst
def test_gstreamer_pipeline_through_grabber():
    with open_source(TEST_PIPELINE) as src:
        assert src.is_live and "GStreamer pipeline" in src.description
        assert src.fps == pytest.approx(30.0)
        frames = read_all(src)
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices)) and indices[-1] == 29
    assert len(frames) + src.dropped == 30
    assert all(f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8 for f in frames)
    # pattern=ball moves: the frames really differ
    assert not np.array_equal(frames[0].image, frames[-1].image)


@needs_gst
def test_grabber_drops_stale_frames_for_a_slow_reader():
    pipeline = ("gst:videotestsrc is-live=true pattern=ball ! video/x-raw,width=160,height=120,"
                "framerate=30/1 ! videoconvert ! video/x-raw,format=BGR ! appsink")
    stop = threading.Event()
    with open_source(pipeline) as src:
        indices = []
        for _ in range(5):
            frame = src.read(timeout=5.0)
            assert frame is not None
            indices.append(frame.index)
            stop.wait(0.15)  # a slow detector
        dropped = src.dropped
    assert dropped > 0
    assert all(b > a for a, b in zip(indices, indices[1:]))
    assert indices[-1] - indices[0] > len(indices) - 1


@needs_gst
def test_read_times_out_with_none_between_slow_frames():
    # one frame every 2 s; sync=false hands the first over at once
    pipeline = ("videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=1/2 "
                "! videoconvert ! video/x-raw,format=BGR ! appsink sync=false")
    with open_source(pipeline, read_timeout_s=0.2) as src:
        first = src.read(timeout=5.0)
        assert first is not None and first.index == 0
        assert src.read() is None
        assert src.read(timeout=0.1) is None


@needs_gst
@pytest.mark.parametrize(
    "pipeline, expected",
    [
        ("videotestsrc num-buffers=3 ! video/x-raw,format=GRAY8,width=32,height=16 ! appsink",
         (16, 32, 3)),
        ("videotestsrc num-buffers=3 ! video/x-raw,format=BGRA,width=32,height=16 ! appsink",
         (16, 32, 3)),
        ("videotestsrc num-buffers=3 ! video/x-raw,width=32,height=16 ! videoconvert ! fakesink",
         "must end in appsink"),
        ("videotestsrc ! nosuchelement1 ! nosuchelement2 ! appsink",
         "lacks: nosuchelement1, nosuchelement2"),
        ("videotestsrc num-buffers=0 ! video/x-raw,width=32,height=16 ! videoconvert ! appsink",
         "opened but delivered no frame"),
    ],
)
def test_gstreamer_pipelines_bgr_or_clear_error(pipeline, expected):
    if "nosuchelement" in pipeline and shutil.which("gst-inspect-1.0") is None:
        pytest.skip("gst-inspect-1.0 is needed to find missing elements before OpenCV hangs")
    if isinstance(expected, str):
        with pytest.raises(SourceError, match=expected):
            with open_source("gst:" + pipeline) as src:
                read_all(src)
        return
    with open_source("gst:" + pipeline) as src:
        frames = read_all(src)
    assert frames and all(f.image.shape == expected and f.image.dtype == np.uint8 for f in frames)


@needs_gst
def test_live_close_is_final():
    src = open_source(TEST_PIPELINE)
    src.close()
    src.close()
    with pytest.raises(EndOfStream):
        src.read(timeout=0.1)


@pytest.mark.parametrize("value", [0, -1.0, "2", True, None])
def test_bad_read_timeout_refused(tmp_path, value):
    path = write_video(tmp_path / "clip.avi", 2, "MJPG")
    with pytest.raises(SourceError, match="read_timeout_s must be a number of seconds > 0"):
        open_source(path, read_timeout_s=value)


# --- buffer pool --------------------------------------------------------------------------

def test_buffer_pool_reuses_only_what_nobody_holds():
    pool = BufferPool(2)
    assert pool.take() is None
    a = np.zeros((4, 4, 3), np.uint8)
    pool.keep(a)
    assert pool.take() is None  # ``a`` is still held here
    view = a[1:]
    a_id = id(a)
    del a
    assert pool.take() is None  # the view keeps it
    del view
    free = pool.take()
    assert free is not None and id(free) == a_id
    del free
    pool.keep(np.zeros((8, 8, 3), np.uint8))  # new size: the old buffers go
    assert len(pool) == 1 and pool.take().shape == (8, 8, 3)
