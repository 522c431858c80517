"""The overview's SVG pictures, drawn without a database: structure, scale, edge cases and
escaping."""

from __future__ import annotations

from xml.etree.ElementTree import Element, fromstring

import pytest

from app.console.chart import (
    SERIES,
    HourBucket,
    RateBar,
    compact_count,
    hourly_chart,
    nice_scale,
    success_rate_chart,
)

SVG = "{http://www.w3.org/2000/svg}"


def day(counts_by_hour: dict[int, dict[str, int]] | None = None) -> list[HourBucket]:
    counts_by_hour = counts_by_hour or {}
    return [HourBucket(f"{hour:02d}:00", counts_by_hour.get(hour, {})) for hour in range(24)]


def parsed(svg: str) -> Element:
    return fromstring(svg)  # noqa: S314 - our own markup, parsed to check it is well formed


def hour_groups(root: Element) -> list[Element]:
    return [group for group in root.iter(f"{SVG}g") if group.get("class") == "hour"]


def bars(group: Element) -> list[Element]:
    return list(group.iter(f"{SVG}rect"))


def test_one_bar_group_per_hour_stacked_in_series_order_with_a_legend():
    buckets = day({9: {"successful": 6, "failed": 2, "needs_review": 1}, 10: {"pending": 3}})
    svg = hourly_chart(buckets, hour_axis_title="Hour (Africa/Kampala)")
    root = parsed(svg)
    assert (root.get("id"), root.get("role")) == ("hourly-chart", "img")
    assert root.get("viewBox") == "0 0 960 300"
    summary = root.get("aria-label") or ""
    assert "12 in all" in summary
    assert "6 successful, 2 failed, 0 expired, 3 pending, 1 needs review" in summary
    assert "busiest hour was 09:00 with 9" in summary
    assert root.find(f"{SVG}title") is not None
    assert root.find(f"{SVG}title").text == summary

    groups = hour_groups(root)
    assert len(groups) == 24
    nine = groups[9]
    assert nine.find(f"{SVG}title").text.startswith("09:00: 9 payments (6 successful, 2 failed")
    colours = [rect.get("fill") for rect in bars(nine)]
    assert colours == ["#1b7f3b", "#b42318", "#6941c6"]  # successful, failed, needs review
    heights = [float(rect.get("height")) for rect in bars(nine)]
    assert heights[0] == pytest.approx(3 * heights[1])
    # Stacked: each segment sits on the one below.
    ys = [float(rect.get("y")) for rect in bars(nine)]
    assert ys[1] + heights[1] == pytest.approx(ys[0])
    assert bars(groups[0]) == []

    legend = next(group for group in root.iter(f"{SVG}g") if group.get("class") == "legend")
    labels = [text.text for text in legend.iter(f"{SVG}text")]
    assert labels == [
        "Successful (6)",
        "Failed (2)",
        "Expired (0)",
        "Pending (3)",
        "Needs review (1)",
    ]
    texts = [text.text for text in root.iter(f"{SVG}text")]
    assert "Hour (Africa/Kampala)" in texts
    assert "Payments" in texts
    assert "00:00" in texts
    assert "22:00" in texts


def test_an_empty_day_still_draws_its_axes_and_says_so():
    root = parsed(hourly_chart(day()))
    assert len(hour_groups(root)) == 24
    assert all(bars(group) == [] for group in hour_groups(root))
    texts = [text.text for text in root.iter(f"{SVG}text")]
    assert "No payments in these hours" in texts
    assert [text.text for text in root.iter(f"{SVG}text") if text.get("text-anchor") == "end"] == [
        "0",
        "1",
        "2",
        "3",
        "4",
    ]
    assert root.get("aria-label") == "Payments per hour over the last 24 hours: none."


def test_a_single_huge_hour_fills_the_plot_and_small_hours_stay_visible():
    buckets = day({3: {"successful": 1_000_000}, 4: {"failed": 1}})
    root = parsed(hourly_chart(buckets))
    groups = hour_groups(root)
    (huge,) = bars(groups[3])
    (tiny,) = bars(groups[4])
    assert float(huge.get("height")) == pytest.approx(214)  # the whole plot: top = 1,000,000
    assert float(tiny.get("height")) == pytest.approx(1)  # one pixel, not invisible
    for rect in root.iter(f"{SVG}rect"):
        assert 0 <= float(rect.get("y")) <= 300
    axis = [text.text for text in root.iter(f"{SVG}text") if text.get("text-anchor") == "end"]
    assert axis == ["0", "500k", "1M"]


def test_labels_and_titles_are_escaped():
    hostile = '<script>alert("x")</script> & co'
    svg = hourly_chart(
        [HourBucket(hostile, {"successful": 1}), *day()[1:]],
        hour_axis_title='Hour ("<zone>")',
    )
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "&amp; co" in svg
    root = parsed(svg)  # still well-formed XML
    texts = [text.text for text in root.iter(f"{SVG}text")]
    assert hostile in texts
    assert 'Hour ("<zone>")' in texts
    assert hostile in (root.get("aria-label") or "")

    rates = success_rate_chart([RateBar('Mobile "<b>" & Co', 1, 2)])
    assert "<b>" not in rates
    assert 'Mobile "<b>" & Co' in [text.text for text in parsed(rates).iter(f"{SVG}text")]


def test_success_rate_bars_are_as_long_as_the_rate():
    svg = success_rate_chart(
        [RateBar("All providers", 3, 4), RateBar("MTN MoMo", 3, 3), RateBar("Airtel Money", 0, 0)]
    )
    root = parsed(svg)
    assert root.get("role") == "img"
    rows = [group for group in root.iter(f"{SVG}g") if group.get("class") == "provider"]
    assert len(rows) == 3
    track, fill = bars(rows[0])
    assert float(fill.get("width")) == pytest.approx(0.75 * float(track.get("width")))
    assert float(bars(rows[1])[1].get("width")) == float(bars(rows[1])[0].get("width"))
    assert len(bars(rows[2])) == 1  # nothing settled: the empty track only
    words = [text.text for text in root.iter(f"{SVG}text")]
    assert "75.0% (3 of 4 settled)" in words
    assert "nothing settled yet" in words
    assert "Airtel Money nothing settled yet" in (root.get("aria-label") or "")


def test_success_rate_chart_without_providers():
    root = parsed(success_rate_chart([]))
    assert "No payments in this period" in [text.text for text in root.iter(f"{SVG}text")]


@pytest.mark.parametrize(
    ("largest", "scale"),
    [
        (0, (4, 1)),
        (1, (1, 1)),
        (3, (3, 1)),
        (7, (8, 2)),
        (45, (60, 20)),
        (1_000_000, (1_000_000, 500_000)),
        (1_000_001, (1_500_000, 500_000)),
    ],
)
def test_nice_scale(largest, scale):
    assert nice_scale(largest) == scale


def test_compact_count():
    assert [compact_count(n) for n in (0, 950, 1000, 1500, 2_000_000, 2_500_000_000)] == [
        "0",
        "950",
        "1k",
        "1.5k",
        "2M",
        "2.5G",
    ]


def test_series_match_the_stylesheet_swatches():
    assert [series.status for series in SERIES] == [
        "successful",
        "failed",
        "expired",
        "pending",
        "needs_review",
    ]
