"""Checks every file sink makes before writing: never overwrite by accident, fail in one line."""

import os

from ..errors import SinkError


def prepare_output_path(path, overwrite, what):
    # type: (str, bool, str) -> str
    """Check that ``path`` may be written and make its folder; returns ``path``.

    ``what`` names the output in messages ("recording", "detections file").
    """
    if not path:
        raise SinkError("the %s needs a file name" % what)
    if os.path.isdir(path):
        raise SinkError("%s is a folder; give the %s a file name inside it" % (path, what))
    if os.path.lexists(path) and not overwrite:
        raise SinkError("%s already exists; pass --overwrite to replace it or choose another "
                        "file name for the %s" % (path, what))
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise SinkError("cannot create the folder %s for the %s %s (%s); choose a writable place"
                        % (folder, what, path, exc.strerror or exc))
    if not os.access(folder, os.W_OK):
        raise SinkError("cannot write the %s %s: the folder %s is not writable; choose another "
                        "place" % (what, path, folder))
    return path
