"""Provider adapters behind one small interface (``base.PaymentProvider``)."""
