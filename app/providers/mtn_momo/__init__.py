"""MTN MoMo Collection (request-to-pay)."""

from app.providers.mtn_momo.adapter import MtnMomoCollection

__all__ = ["MtnMomoCollection"]
