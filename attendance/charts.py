"""Chart geometry for the month page: bar charts drawn as server-side SVG (no script, no CDN, no
inline style: the CSP allows none), each with axes, tick labels and a value on every bar."""

from __future__ import annotations

from dataclasses import dataclass, field

from attendance.selectors import MonthSheet

LEFT, TOP, BOTTOM, PLOT_HEIGHT = 48, 16, 28, 120


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str        # under the bar (a day, a week)
    value: str        # above the bar
    title: str        # the tooltip


@dataclass
class Chart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[tuple[float, str]] = field(default_factory=list)   # (y, label) on the value axis
    empty: bool = False
    left: int = LEFT
    top: int = TOP
    bottom_y: int = TOP + PLOT_HEIGHT


def _chart(values: list[float], labels: list[str], texts: list[str], titles: list[str], *, peak: float,
           ticks: list[tuple[float, str]], slot: int) -> Chart:
    bars = []
    for index, value in enumerate(values):
        height = round(PLOT_HEIGHT * (value / peak if peak else 0), 1)
        bars.append(Bar(x=LEFT + index * slot + slot * 0.15, y=TOP + PLOT_HEIGHT - height, width=round(slot * 0.7, 1),
                        height=height, label=labels[index], value=texts[index], title=titles[index]))
    return Chart(width=LEFT + slot * len(values) + 8, height=TOP + PLOT_HEIGHT + BOTTOM, bars=bars,
                 ticks=[(TOP + PLOT_HEIGHT - PLOT_HEIGHT * (v / peak if peak else 0), text) for v, text in ticks])


def rate_chart(sheet: MonthSheet) -> Chart:
    """Attendance rate per day (0-100 %); a day nobody was due shows no bar and no value."""
    has_data = any(cell.record is not None for row in sheet.rows for cell in row.cells)
    due = [any(row.cells[i].letter not in ("", "O") for row in sheet.rows) for i in range(len(sheet.days))]
    values = [rate * 100 for rate in sheet.daily_rate]
    texts = [f"{round(v)}" if d else "" for v, d in zip(values, due, strict=True)]
    labels = [str(day.day) if day.day == 1 or day.day % 5 == 0 else "" for day in sheet.days]
    titles = [f"{day:%a} {day.day} {day:%b}: " + (f"{round(v)} % present" if d else "nobody due")
              for day, v, d in zip(sheet.days, values, due, strict=True)]
    chart = _chart(values, labels, texts, titles, peak=100, ticks=[(0, "0 %"), (50, "50 %"), (100, "100 %")], slot=22)
    chart.empty = not has_data
    return chart


def late_chart(sheet: MonthSheet) -> Chart:
    """Late arrivals per ISO week."""
    counts = [count for _, count in sheet.weekly_late]
    peak = max(counts + [1])
    ticks = [(0, "0"), (peak, str(peak))] + ([(peak / 2, f"{peak / 2:g}")] if peak >= 2 else [])
    chart = _chart([float(c) for c in counts], [week for week, _ in sheet.weekly_late], [str(c) for c in counts],
                   [f"week {week[1:]}: {count} late" for week, count in sheet.weekly_late], peak=peak, ticks=ticks, slot=56)
    chart.empty = not any(cell.record is not None for row in sheet.rows for cell in row.cells)
    return chart
