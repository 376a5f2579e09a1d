"""ASGI entry point: HTTP through Django, websockets through Channels routing."""

import os

from django.core.asgi import get_asgi_application

try:  # Under Daphne: let Django, not Twisted, judge request bodies.
    from daphne.http_protocol import WebRequest

    _daphne_request_init = WebRequest.__init__

    def _request_init(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003 - Twisted's signature
        _daphne_request_init(self, *args, **kwargs)
        # Twisted parses a multipart or form body into request.args, which Daphne never reads (it
        # hands the raw body to Django), and answers one it cannot parse (say, multipart without a
        # boundary) with an empty 400 before Django sees it: no JSON error, no security headers,
        # and every upload parsed twice.
        self._parsePOSTFormSubmission = False

    WebRequest.__init__ = _request_init
except ImportError:  # another ASGI server
    pass

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402 - needs the app registry loaded
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from portal.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
