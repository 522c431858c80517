"""The overview's pictures, drawn on the server as inline SVG: no script, no external file, so
they pass the console's ``default-src 'self'`` policy and print as they look.

Pure functions from numbers to markup. The markup is built as an element tree and serialised
by ``xml.etree``, which escapes every label and title; nothing is pasted into a string. Colours
are SVG presentation attributes (``fill="…"``), which the policy allows, unlike ``style``.

    hourly_chart(buckets)       stacked bars: payments per hour by outcome, a legend, two axes
    success_rate_chart(rates)   one horizontal bar per provider: its success rate
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from xml.etree.ElementTree import Element, SubElement, tostring

__all__ = [
    "SERIES",
    "HourBucket",
    "RateBar",
    "compact_count",
    "hourly_chart",
    "hourly_summary",
    "nice_scale",
    "success_rate_chart",
]

SVG_NS: Final = "http://www.w3.org/2000/svg"
INK: Final = "#1d2430"
MUTED: Final = "#5b6472"
GRID: Final = "#d9dee5"
TRACK: Final = "#eef1f5"
FONT: Final = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"


@dataclass(frozen=True)
class Series:
    status: str
    label: str
    colour: str  # the same as the stylesheet's .swatch-<status>


# Stacked from the bottom in this order.
SERIES: Final = (
    Series("successful", "Successful", "#1b7f3b"),
    Series("failed", "Failed", "#b42318"),
    Series("expired", "Expired", "#98a2b3"),
    Series("pending", "Pending", "#e8a33d"),
    Series("needs_review", "Needs review", "#6941c6"),
)


@dataclass(frozen=True)
class HourBucket:
    """One hour: its label as the operator reads it ("14:00") and its payments by status."""

    label: str
    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.get(series.status, 0) for series in SERIES)


@dataclass(frozen=True)
class RateBar:
    """A provider's success: ``successful`` of ``settled`` (successful + failed + expired)."""

    label: str
    successful: int
    settled: int

    @property
    def rate(self) -> float | None:
        return self.successful / self.settled if self.settled else None


# --- helpers ------------------------------------------------------------------------------------
def _num(value: float) -> str:
    """A coordinate, short: 12.0 → "12", 12.345 → "12.3"."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def compact_count(count: int) -> str:
    """An axis label that fits: 950 → "950", 1500 → "1.5k", 2000000 → "2M"."""
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if count >= size:
            return f"{count / size:.1f}".rstrip("0").rstrip(".") + suffix
    return str(count)


def nice_scale(largest: int, ticks: int = 4) -> tuple[int, int]:
    """(top of the axis, step between gridlines): a whole step of 1, 2 or 5 times a power of
    ten, with at most ``ticks`` steps up to a top at or above ``largest``. An empty chart still
    gets a scale (0 to 4), so it reads as "nothing happened", not as a broken picture."""
    raw = max(largest, 1) / ticks
    magnitude = 10 ** max(0, math.floor(math.log10(raw)))
    step = next(
        (magnitude * factor for factor in (1, 2, 5) if magnitude * factor >= raw), magnitude * 10
    )
    top = step * max(1, math.ceil(largest / step)) if largest else step * ticks
    return top, step


def _svg(element_id: str, width: int, height: int, summary: str) -> Element:
    svg = Element(
        "svg",
        {
            "xmlns": SVG_NS,
            "id": element_id,
            "role": "img",
            "aria-label": summary,
            "viewBox": f"0 0 {width} {height}",
            "width": str(width),
            "height": str(height),
            "font-family": FONT,
            "font-size": "12",
        },
    )
    SubElement(svg, "title").text = summary
    return svg


def _text(parent: Element, x: float, y: float, content: str, **attributes: str) -> Element:
    text = SubElement(
        parent, "text", {"x": _num(x), "y": _num(y), "fill": MUTED, **_dashed(attributes)}
    )
    text.text = content
    return text


def _rect(parent: Element, x: float, y: float, width: float, height: float, fill: str) -> Element:
    return SubElement(
        parent,
        "rect",
        {"x": _num(x), "y": _num(y), "width": _num(width), "height": _num(height), "fill": fill},
    )


def _dashed(attributes: Mapping[str, str]) -> dict[str, str]:
    # text_anchor="end" → text-anchor="end": SVG's attribute names have dashes.
    return {name.replace("_", "-"): value for name, value in attributes.items()}


def _serialise(svg: Element) -> str:
    return tostring(svg, encoding="unicode", short_empty_elements=True)


# --- payments per hour ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Frame:
    """Where the hourly chart's plot sits in its 960 by 300 picture."""

    width: int = 960
    height: int = 300
    left: int = 56  # count labels
    right: int = 12
    top: int = 40  # the legend
    bottom: int = 46  # hour labels and the axis title

    @property
    def plot_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> int:
        return self.height - self.top - self.bottom

    @property
    def baseline(self) -> int:
        return self.top + self.plot_height


def _series_total(buckets: Sequence[HourBucket], series: Series) -> int:
    return sum(bucket.counts.get(series.status, 0) for bucket in buckets)


def hourly_summary(buckets: Sequence[HourBucket], period: str = "the last 24 hours") -> str:
    """The chart in one sentence, for screen readers and the tooltip of the whole picture."""
    total = sum(bucket.total for bucket in buckets)
    if total == 0:
        return f"Payments per hour over {period}: none."
    parts = ", ".join(
        f"{_series_total(buckets, series):,} {series.label.lower()}" for series in SERIES
    )
    busiest = max(buckets, key=lambda bucket: bucket.total)
    return (
        f"Payments per hour over {period}: {total:,} in all ({parts}); "
        f"the busiest hour was {busiest.label} with {busiest.total:,}."
    )


def hourly_chart(
    buckets: Sequence[HourBucket],
    *,
    element_id: str = "hourly-chart",
    hour_axis_title: str = "Hour",
    period: str = "the last 24 hours",
) -> str:
    """Stacked bars, one group (``<g class="hour">``) per bucket, oldest on the left."""
    frame = _Frame()
    svg = _svg(element_id, frame.width, frame.height, hourly_summary(buckets, period))
    top, step = nice_scale(max((bucket.total for bucket in buckets), default=0))
    _legend(svg, buckets)
    _count_axis(svg, frame, top, step)
    slot = frame.plot_width / max(len(buckets), 1)
    label_every = max(1, math.ceil(len(buckets) / 12))  # room for about twelve hour labels
    for index, bucket in enumerate(buckets):
        _hour_group(svg, frame, bucket, x=frame.left + index * slot, slot=slot, top=top)
        if index % label_every == 0:
            _text(
                svg,
                frame.left + (index + 0.5) * slot,
                frame.baseline + 16,
                bucket.label,
                text_anchor="middle",
                font_size="11",
            )
    _text(
        svg,
        frame.left + frame.plot_width / 2,
        frame.height - 6,
        hour_axis_title,
        text_anchor="middle",
    )
    if all(bucket.total == 0 for bucket in buckets):
        _text(
            svg,
            frame.left + frame.plot_width / 2,
            frame.top + frame.plot_height / 2,
            "No payments in these hours",
            text_anchor="middle",
            font_size="14",
        )
    return _serialise(svg)


def _legend(svg: Element, buckets: Sequence[HourBucket]) -> None:
    legend = SubElement(svg, "g", {"class": "legend"})
    x = 56.0
    for series in SERIES:
        count = _series_total(buckets, series)
        _rect(legend, x, 10, 12, 12, series.colour)
        label = f"{series.label} ({count:,})"
        _text(legend, x + 17, 21, label, fill=INK)
        x += 17 + 7.2 * len(label) + 20  # about 7 px a character at 12 px


def _count_axis(svg: Element, frame: _Frame, top: int, step: int) -> None:
    axis = SubElement(svg, "g", {"class": "count-axis"})
    for value in range(0, top + 1, step):
        y = frame.baseline - frame.plot_height * value / top
        SubElement(
            axis,
            "line",
            {
                "x1": _num(frame.left),
                "x2": _num(frame.width - frame.right),
                "y1": _num(y),
                "y2": _num(y),
                "stroke": INK if value == 0 else GRID,
                "stroke-width": "1",
            },
        )
        _text(axis, frame.left - 6, y + 4, compact_count(value), text_anchor="end", font_size="11")
    title_y = frame.top + frame.plot_height / 2
    _text(
        axis,
        14,
        title_y,
        "Payments",
        text_anchor="middle",
        transform=f"rotate(-90 14 {_num(title_y)})",
    )


def _hour_group(
    svg: Element, frame: _Frame, bucket: HourBucket, *, x: float, slot: float, top: int
) -> None:
    group = SubElement(svg, "g", {"class": "hour"})
    counted = ", ".join(f"{bucket.counts.get(s.status, 0):,} {s.label.lower()}" for s in SERIES)
    tooltip = SubElement(group, "title")
    tooltip.text = f"{bucket.label}: {bucket.total:,} payments ({counted})"
    bar_width = slot * 0.72
    bar_x = x + (slot - bar_width) / 2
    y = float(frame.baseline)
    for series in SERIES:
        count = bucket.counts.get(series.status, 0)
        if count <= 0:
            continue
        # At least one pixel: an hour with one payment beside one with a million still shows.
        height = max(frame.plot_height * count / top, 1.0)
        y -= height
        _rect(group, bar_x, max(y, 0.0), bar_width, height, series.colour)


# --- success rate by provider ----------------------------------------------------------------
def success_rate_chart(bars: Sequence[RateBar], *, element_id: str = "provider-success") -> str:
    """One row per provider: its name, a bar as long as its success rate, and the numbers."""
    width, label_width, track_width, row = 960, 170, 520, 30
    height = 12 + row * max(len(bars), 1)
    svg = _svg(element_id, width, height, _rates_summary(bars))
    if not bars:
        _text(svg, 0, 26, "No payments in this period", fill=INK)
    for index, bar in enumerate(bars):
        y = 8 + index * row
        group = SubElement(svg, "g", {"class": "provider"})
        _text(group, 0, y + 15, bar.label, fill=INK)
        _rect(group, label_width, y + 2, track_width, 18, TRACK)
        if bar.rate is not None:
            _rect(group, label_width, y + 2, track_width * bar.rate, 18, SERIES[0].colour)
        _text(group, label_width + track_width + 10, y + 15, _rate_words(bar), fill=INK)
    return _serialise(svg)


def _rate_words(bar: RateBar) -> str:
    if bar.rate is None:
        return "nothing settled yet"
    return f"{bar.rate:.1%} ({bar.successful:,} of {bar.settled:,} settled)"


def _rates_summary(bars: Sequence[RateBar]) -> str:
    if not bars:
        return "Success rate by provider: no payments."
    return "Success rate by provider: " + "; ".join(
        f"{bar.label} {_rate_words(bar)}" for bar in bars
    )
