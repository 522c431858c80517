"""Airtel Money collections (USSD push)."""

from app.providers.airtel_money.adapter import AirtelMoneyCollection

__all__ = ["AirtelMoneyCollection"]
