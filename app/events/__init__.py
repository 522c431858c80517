"""Outbox events and their signed delivery to the storefront."""
