"""The console's overview: how payments are going, what waits for a person, and a picture of
the last 24 hours. The numbers come from ``app.console.stats``, the pictures from
``app.console.chart``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from app.console.chart import HourBucket, RateBar, hourly_chart, success_rate_chart
from app.console.stats import OUTCOMES, PERIODS, HourCounts, ProviderStats, load_overview
from app.console.web import PREFIX, Viewer, money, render

router = APIRouter(prefix=PREFIX, include_in_schema=False)

PERIOD_NAMES: Final[Mapping[str, str]] = {"24h": "Last 24 hours", "7d": "Last 7 days"}
PROVIDER_NAMES: Final[Mapping[str, str]] = {"mtn_momo": "MTN MoMo", "airtel_money": "Airtel Money"}
STATUS_NAMES: Final[Mapping[str, str]] = {
    "successful": "Successful",
    "failed": "Failed",
    "expired": "Expired",
    "pending": "Pending",
    "needs_review": "Needs review",
    "succeeded": "Succeeded",
}


@router.get("/overview", response_class=HTMLResponse)
async def overview(request: Request, console: Viewer, period: str = "24h") -> Response:
    if period not in PERIODS:
        period = "24h"  # an old or mistyped link still shows something useful
    found = await load_overview(console.runtime.engine, period)
    everyone = [found.stats.overall, *found.stats.providers]
    return render(
        request,
        "overview.html",
        console=console,
        notice=request.query_params.get("notice"),
        period=period,
        periods=PERIOD_NAMES,
        stats=found.stats,
        backlog=found.backlog,
        outcomes=OUTCOMES,
        hourly_svg=Markup(  # noqa: S704 - serialised by xml.etree, every text escaped
            hourly_chart(
                hour_buckets(found.hours, console.zone),
                hour_axis_title=f"Hour the payment was created ({console.zone.key})",
            )
        ),
        rates_svg=Markup(  # noqa: S704 - as above
            success_rate_chart(rate_bars(everyone))
        ),
        provider_name=provider_name,
        status_name=status_name,
        amounts=amounts,
        number=number,
        percent=percent,
        duration=duration,
    )


def hour_buckets(hours: Sequence[HourCounts], zone: ZoneInfo) -> list[HourBucket]:
    """The chart's bars, each labelled with its hour in the operator's timezone."""
    return [
        HourBucket(label=hour.start.astimezone(zone).strftime("%H:%M"), counts=hour.counts)
        for hour in hours
    ]


def rate_bars(everyone: Sequence[ProviderStats]) -> list[RateBar]:
    return [
        RateBar(provider_name(stats.provider), stats.successful, stats.settled)
        for stats in everyone
    ]


# --- words for the template -----------------------------------------------------------------
def provider_name(provider: str | None) -> str:
    if provider is None:
        return "All providers"
    return PROVIDER_NAMES.get(provider, provider)


def status_name(status: str) -> str:
    return STATUS_NAMES.get(status, status.replace("_", " ").capitalize())


def amounts(by_currency: Mapping[str, int] | None) -> str:
    """``{"UGX": 50000}`` → ``UGX 50,000``; several currencies are listed side by side."""
    if not by_currency:
        return "—"
    return " + ".join(money(amount, currency) for currency, amount in sorted(by_currency.items()))


def number(count: int) -> str:
    return f"{count:,}"


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.1%}"


def duration(seconds: float | None) -> str:
    """A median time to settle as a person says it: ``42 s``, ``3 min 5 s``, ``2 h 10 min``."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
