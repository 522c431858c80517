"""Payments: the state machine, its storage and the storefront's payments API."""
