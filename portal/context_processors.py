"""The navigation: the links each person may open, computed once from the permission questions
(portal/permissions.py), so no one is shown a link that answers 403 or 404."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from portal import permissions


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    active: bool = False


def _url(name: str) -> str | None:
    """The URL named ``name``, or None where the project does not have it (an optional page)."""
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def nav_links(request: HttpRequest) -> list[NavLink]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return []
    manager = permissions.is_manager(user)
    admin = permissions.is_admin(user)
    me = permissions.employee_of(user)
    wanted: list[tuple[str, str, bool]] = [
        # (label, url name, shown)
        ("People", "home", True),
        ("Me", "me", me is not None),
        ("Today", "report-today", permissions.may_view_reports(user)),
        ("Month", "report-month", permissions.may_view_reports(user)),
        ("Monitor", "monitor", manager),
        ("Recognise", "recognize", permissions.may_recognize(user)),
        ("Gallery map", "gallery-map", permissions.may_view_gallery_map(user)),
        ("Kiosk", "kiosk", permissions.may_use_kiosk_page(user)),
        ("Manage", "manage-index", permissions.may_manage_people(user)),
        ("Devices", "manage-devices", permissions.may_manage_devices(user)),
        ("Learning", "learning", admin),  # helper H5's page; shown only where it exists
        ("API docs", "api-docs", admin),
        ("Admin", "admin:index", permissions.may_use_admin_site(user)),
    ]
    found = [(label, url) for label, name, shown in wanted if shown and (url := _url(name)) is not None]
    # The current page is the link with the longest URL that starts the path ("/" only for itself).
    matching = [url for _, url in found if request.path == url or (url != "/" and request.path.startswith(url))]
    current = max(matching, key=len, default=None)
    return [NavLink(label=label, url=url, active=url == current) for label, url in found]


def navigation(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    admin = user is not None and permissions.is_admin(user)
    return {
        "nav_links": nav_links(request),
        # The administration's sections (templates/portal/manage/_nav.html).
        "perms_manage": {"departments": admin and permissions.may_manage_departments(user),
                         "shifts": admin and permissions.may_manage_shifts(user),
                         "devices": admin and permissions.may_manage_devices(user)},
    }


def site_time(request: HttpRequest) -> dict[str, str]:
    """The site's time zone (settings.TIME_ZONE), shown on pages and passed to the scripts that
    format times in the browser (kiosk clock, live monitor), so they use the site's zone."""
    return {"site_time_zone": settings.TIME_ZONE}
