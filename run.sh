#!/usr/bin/env bash
# hanja_live launcher: makes .venv on first use, installs the package, then runs it.
#   ./run.sh --demo                 bundled demo clip
#   ./run.sh --camera 0             USB webcam 0      ./run.sh --csi 0   Jetson ribbon camera
#   ./run.sh --setup                only create / update .venv (HANJA_EXTRAS=test adds test tools)
# The venv sees system packages (--system-site-packages): JetPack's TensorRT, pycuda and
# GStreamer-enabled OpenCV live there and cannot come from pip.
set -eu
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
extras="${HANJA_EXTRAS:-}"

say() { printf 'run.sh: %s\n' "$*" >&2; }

pick_python() {
    # The system interpreter first: it is the one JetPack's and Debian's packages are built for.
    local candidate
    for candidate in ${HANJA_PYTHON:-} /usr/bin/python3 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import ensurepip, venv' >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

make_venv() {
    local py
    if ! py="$(pick_python)"; then
        say "no Python 3 with the venv module found; install it (Debian/Ubuntu/JetPack: sudo apt-get install python3-venv) and run again"
        exit 1
    fi
    say "creating $venv with $("$py" --version 2>&1) (first run only)"
    "$py" -m venv --system-site-packages "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip 'setuptools<70' wheel >/dev/null 2>&1 ||
        say "could not upgrade pip (offline?); going on with the one the venv has"
}

has() { "$venv/bin/python" -c "import $1" >/dev/null 2>&1; }
# tensorrt-stubs (type checking) also makes "import tensorrt" work, so ask for a real class.
has_tensorrt() { "$venv/bin/python" -c "import tensorrt; tensorrt.Builder" >/dev/null 2>&1; }

install_pycuda_on_jetson() {
    # pycuda builds from source on Jetson; its build fails without nvcc and cuda.h on the paths.
    local cuda=/usr/local/cuda
    if [ ! -x "$cuda/bin/nvcc" ]; then
        say "pycuda is missing and $cuda/bin/nvcc is absent; install JetPack's CUDA (sudo apt-get install nvidia-jetpack) and run again"
        return 1
    fi
    say "installing pycuda with CUDA from $cuda (a few minutes on a Nano)"
    PATH="$cuda/bin:$PATH" CPATH="$cuda/include:${CPATH:-}" \
        LIBRARY_PATH="$cuda/lib64:${LIBRARY_PATH:-}" LD_LIBRARY_PATH="$cuda/lib64:${LD_LIBRARY_PATH:-}" \
        "$venv/bin/python" -m pip install -q 'pycuda<2025'
}

install_package() {
    local spec="$here"
    [ -n "$extras" ] && spec="$here[$extras]"
    say "installing hanja_live${extras:+ with [$extras]}"
    # Keep the system's NumPy: JetPack's and Debian's OpenCV (and TensorRT) are built
    # against it, and a NumPy 2 pulled in by some requirement breaks their import.
    local pins="$venv/.hanja-constraints.txt" np
    : >"$pins"
    if np="$("$venv/bin/python" -c 'import numpy; print(numpy.__version__)' 2>/dev/null)"; then
        echo "numpy==$np" >"$pins"
    fi
    export PIP_CONSTRAINT="$pins"
    local log="$venv/.hanja-install.log"
    if ! "$venv/bin/python" -m pip install -q -e "$spec" >"$log" 2>&1; then
        cat "$log" >&2
        say "installing hanja_live failed (log above, also in $log); check the network or PIP_INDEX_URL"
        exit 1
    fi
    if ! has cv2; then
        say "no OpenCV on this system; installing opencv-python-headless (no window: use --headless or --record)"
        "$venv/bin/python" -m pip install -q 'opencv-python-headless>=4.1'
    fi
    if has_tensorrt; then
        if ! has pycuda.driver; then
            install_pycuda_on_jetson || say "TensorRT cannot run without pycuda; falling back to ONNX Runtime"
        fi
    fi
    if ! has onnxruntime; then
        "$venv/bin/python" -m pip install -q onnxruntime ||
            say "ONNX Runtime is not available for this platform; TensorRT must be used"
    fi
}

[ -x "$venv/bin/python" ] || make_venv
stamp="$venv/.hanja-installed"
want="$(cat "$here/setup.py" 2>/dev/null | cksum | cut -d' ' -f1) [$extras]"
if [ ! -f "$stamp" ] || ! grep -qxF -- "$want" "$stamp"; then
    install_package
    printf '%s\n' "$want" >>"$stamp"
fi

if [ "${1:-}" = "--setup" ]; then
    exit 0
fi
exec "$venv/bin/python" -m hanja_live "$@"
