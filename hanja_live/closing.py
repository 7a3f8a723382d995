"""ClosesOnExit: ``with stage:`` calls ``stage.close()`` on the way out, however it is left.

Sources, backends and sinks all hold something that must be released (a camera, a GPU
context, an mp4 that is only playable once finalised), so they share this one mixin.
"""


class ClosesOnExit(object):
    def close(self):
        # type: () -> None
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
