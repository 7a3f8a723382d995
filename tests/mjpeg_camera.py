"""A stand-in IP camera for the reconnect tests: numbered JPEG frames over HTTP
(multipart/x-mixed-replace, as most network cameras serve MJPEG) on 127.0.0.1.

``unplug()`` cuts the stream and closes the port (connections are refused, like a camera
whose cable was pulled); ``plug()`` serves again on the same port. Frame numbers go on
counting across plugs, so a reader can tell frames from before and after.
"""

import http.server
import threading
import time

import cv2
import numpy as np

from numbered_frames import H, W, numbered_frame


class MjpegCamera(object):
    def __init__(self, fps=30.0, size=(W, H)):
        self.fps = fps
        self.size = size
        self.port = 0
        self.served = 0  # frames sent so far, over all plugs
        self._server = None
        self._cut = None
        self.plug()

    def url(self, credentials=""):
        return "http://%s127.0.0.1:%d/video.mjpg" % (credentials, self.port)

    def plug(self):
        cut = threading.Event()
        camera = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while not cut.is_set():
                        ok, jpeg = cv2.imencode(".jpg", numbered_frame(camera.served % 256, *camera.size),
                                                [cv2.IMWRITE_JPEG_QUALITY, 95])
                        data = jpeg.tobytes()
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                         b"Content-Length: %d\r\n\r\n" % len(data))
                        self.wfile.write(data + b"\r\n")
                        camera.served += 1
                        cut.wait(1.0 / camera.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, name="mjpeg-camera", daemon=True).start()
        self._server, self._cut = server, cut

    def unplug(self):
        if self._server is None:
            return
        self._cut.set()
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        time.sleep(0.05)  # let the stream threads see the cut and close their sockets

    def close(self):
        self.unplug()
