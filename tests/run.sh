#!/usr/bin/env bash
# The test command (README quick start, .ci/run): installs what the tests need, runs them.
# Real parts over mocks: Debian's OpenCV with GStreamer for the videotestsrc pipeline, Xvfb
# for a real window (libxfixes3 to read its cursor), systemd for systemd-analyze verify of the
# kiosk unit. Without root or apt those tests skip and say why.
set -eu
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

debs="python3-venv python3-opencv gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good xvfb imagemagick xdotool libxfixes3 systemd"
missing=""
for deb in $debs; do
    dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "ok installed" || missing="$missing $deb"
done
if [ -n "$missing" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "tests/run.sh: installing system packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $missing >/dev/null; }; then
        echo "tests/run.sh: apt-get could not install$missing (offline?); tests that need them will skip"
    fi
elif [ -n "$missing" ]; then
    echo "tests/run.sh: missing system packages:$missing (tests that need them will skip)"
fi

HANJA_EXTRAS=onnxruntime,test ./run.sh --setup
# tensorrt-stubs only types the TensorRT module; its dependency, tensorrt itself, cannot be
# installed here (the registry package is a stub that downloads from NVIDIA's index).
.venv/bin/python -m pip show -q tensorrt-stubs >/dev/null 2>&1 ||
    .venv/bin/python -m pip install -q --no-deps tensorrt-stubs
exec .venv/bin/python -m pytest -q -ra tests "$@"
