"""Inbound provider callbacks: verification, inbox, hand-off to the payment service."""
