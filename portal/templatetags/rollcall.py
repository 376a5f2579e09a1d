"""RollCall's template filters: durations as h:mm."""

from __future__ import annotations

from django import template

register = template.Library()


def hours_minutes(seconds: int | float | None) -> str:
    """A duration in seconds as ``h:mm`` (``9042`` -> ``"2:30"``, 100 h -> ``"100:00"``); rounds to
    the nearest minute, so a total computed from exact seconds may differ from the sum of rounded rows
    by at most a minute per row (the page sums exact seconds)."""
    if seconds is None or seconds == "":
        return ""
    minutes = int(round(float(seconds) / 60))
    sign = "-" if minutes < 0 else ""
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours}:{rest:02d}"


@register.filter(name="hm")
def hm(seconds: int | float | None) -> str:
    return hours_minutes(seconds)


@register.filter(name="get_item")
def get_item(mapping: dict, key: object) -> object:
    """``mapping[key]`` in a template (``row.totals|get_item:letter``); empty when missing."""
    return mapping.get(key, "") if hasattr(mapping, "get") else ""
