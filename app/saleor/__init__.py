"""The gateway as a Saleor payment app (DESIGN §12): Saleor's Transactions API webhooks come in
under ``/saleor/api/``, outcomes go back with ``transactionEventReport``."""
