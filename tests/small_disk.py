"""A real, small filesystem to fill up: a tmpfs mounted for the test (needs root, or the
right to mount; without it the tests that use it skip and say so)."""

import os
import shutil
import subprocess

import pytest


def mount_small_disk(folder, size_kb):
    os.makedirs(folder, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command to make a small filesystem")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dk,mode=0777" % size_kb, "tmpfs",
                           folder], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    if proc.returncode != 0:
        pytest.skip("cannot mount a small tmpfs to fill up (%s); run the tests as root"
                    % proc.stdout.strip())
    return folder


def unmount(folder):
    subprocess.run(["umount", "-l", folder], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fill(folder, leave_kb):
    """Fill the filesystem of ``folder`` until about ``leave_kb`` KB are free."""
    info = os.statvfs(folder)
    free = info.f_bavail * info.f_frsize
    size = max(0, free - leave_kb * 1024)
    with open(os.path.join(folder, "filler.bin"), "wb") as f:
        f.write(b"\0" * size)
