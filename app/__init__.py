"""momo-gateway."""
