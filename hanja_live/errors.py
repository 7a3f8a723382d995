"""Errors that the CLI turns into one clear line (no traceback).

Every message says what is wrong and what to do about it.
"""


class HanjaLiveError(Exception):
    """Base class: an error the user can fix; its message is shown as one line."""


class ConfigError(HanjaLiveError):
    """The configuration file or a command-line option is invalid."""


class ModelError(HanjaLiveError):
    """The model file is missing, corrupt, or not a model this app can run."""


class SourceError(HanjaLiveError):
    """A capture source could not be opened or failed while reading."""


class EndOfStream(Exception):
    """A finite source (file, folder) has delivered its last frame.

    Not an error: raised by ``Source.read`` so that the three outcomes of a read stay
    distinct (a frame, ``None`` on timeout, an exception on failure or end).
    """


class SinkError(HanjaLiveError):
    """An output (window, video file, JSON file) could not be opened or written."""
