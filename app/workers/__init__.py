"""Background work: reconciling pending payments and delivering events.

With ``REDIS_URL`` set it runs in arq workers (``momo-gateway worker``); without, the API
process runs the same functions on a timer (``embedded.EmbeddedJobs``).
"""
