"""RollCall edge client: a camera at the door, on-device face detection and tracking, a button and
an RGB LED, and an on-disk queue that delivers check-ins to the portal exactly once.

Standalone: it needs OpenCV, numpy, websocket-client and requests (see requirements.txt), never
Django or torch, so it runs on a Jetson Nano. Run it with ``python -m edge_client --help``.
"""

__version__ = "1.0.0"
