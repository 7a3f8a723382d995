"""A short soak in the suite (tests/soak.py runs the long one): the real app on a looping clip
and on a network camera that drops out, with resident memory and open files watched."""

import pytest

from soak import soak


@pytest.mark.parametrize("source, unplug_every", [("file", None), ("mjpeg", 600)])
def test_short_soak_memory_and_files_stay_flat(tmp_path, source, unplug_every):
    lines = []
    # a live camera is recorded on its clock (about 30 frames a second of the run), a file
    # frame by frame: 3-s segments give the live run several
    result = soak(frames=1500, warmup=500, every=250, source=source, unplug_every=unplug_every,
                  segment_s=10.0 if source == "file" else 3.0, out=str(tmp_path),
                  say=lines.append)
    assert result["ok"], "\n".join(lines + [repr(result)])
    assert result["frames"] >= 1500 and result["rss_growth_mb"] < 5.0
    assert result["fds_leak"] <= 0 and result["threads_leak"] <= 0
    assert result["reconnects"] == result["unplugs"] == (2 if unplug_every else 0)
    assert result["segments"] >= 2
    if source == "file":
        assert result["recorded_frames"] >= result["frames"]
