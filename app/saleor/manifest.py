"""The app manifest Saleor reads when the app is installed."""

from __future__ import annotations

from typing import Any

from app.saleor.events import SaleorEvent

# The manifest id is also the payment gateway id a storefront passes to Saleor.
APP_ID = "ug.momo-gateway"
APP_NAME = "MoMo Gateway (MTN MoMo + Airtel Money)"
APP_VERSION = "0.1.0"
PREFIX = "/saleor/api"


def manifest(base_url: str) -> dict[str, Any]:
    """``base_url``: where Saleor reaches the gateway, e.g. ``https://pay.example.com``."""
    root = base_url.rstrip("/") + PREFIX
    return {
        "id": APP_ID,
        "version": APP_VERSION,
        "name": APP_NAME,
        "about": "Take payments with MTN Mobile Money and Airtel Money in Uganda: the payer "
        "approves on their phone, the order is marked paid when the money has moved.",
        "permissions": ["HANDLE_PAYMENTS"],
        "appUrl": f"{root}/app",
        "tokenTargetUrl": f"{root}/register",
        "requiredSaleorVersion": ">=3.14",
        "author": "momo-gateway",
        "dataPrivacyUrl": f"{base_url.rstrip('/')}/docs",
        "homepageUrl": f"{base_url.rstrip('/')}/docs",
        "supportUrl": f"{base_url.rstrip('/')}/docs",
        "webhooks": [
            {
                "name": event.spec.typename,
                "syncEvents": [event.value],
                "query": event.spec.query(),
                "targetUrl": f"{root}/webhooks/{event.slug}",
                "isActive": True,
            }
            for event in SaleorEvent
        ],
        "extensions": [],
    }
