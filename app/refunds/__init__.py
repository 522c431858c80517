"""Refunds: money given back for a successful payment, through the payment's own provider."""
