"""Template context every page gets."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def site_time(request: HttpRequest) -> dict[str, str]:
    """The site's time zone (settings.TIME_ZONE), shown on pages and passed to the scripts that
    format times in the browser (kiosk clock, live monitor), so they use the site's zone."""
    return {"site_time_zone": settings.TIME_ZONE}
