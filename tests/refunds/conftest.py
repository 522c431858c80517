"""Refund tests use the top-level fixtures (``payments``, ``fake_refunds``)."""
