"""Where bundled files live and how relative paths given by the user are resolved."""

import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
PROJECT_DIR = os.path.dirname(PACKAGE_DIR)
DEMO_CLIP = os.path.join(PACKAGE_DIR, "assets", "demo.mp4")


def resolve(path):
    # type: (str) -> str
    """A relative path is looked up in the current folder, then in the project folder.

    The project folder fallback lets ``./run.sh`` find ``models/...`` from anywhere; when neither
    exists the current-folder path is returned so error messages name what the user typed.
    """
    path = os.path.expanduser(path)
    if os.path.isabs(path) or os.path.exists(path):
        return path
    candidate = os.path.join(PROJECT_DIR, path)
    return candidate if os.path.exists(candidate) else path
