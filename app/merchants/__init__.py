"""Merchants (storefronts): API keys, callback URL, webhook signing secret."""
