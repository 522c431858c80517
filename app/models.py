"""Every table, imported in one place so Alembic and ``create_all`` see the whole schema."""

from app.console.models import ConsoleSession
from app.db import Base
from app.events.models import DeliveryAttempt, OutboxEvent
from app.idempotency import IdempotencyRecord
from app.merchants.models import Merchant
from app.operators.models import Operator, OperatorAction
from app.payments.models import Payment, PaymentTransition
from app.refunds.models import Refund, RefundTransition
from app.saleor.models import SaleorInstallation
from app.server_secrets import ServerSecret
from app.sms.models import SmsReceipt
from app.status_reads import ProviderStatusRead
from app.webhooks.models import ProviderCallback

__all__ = [
    "Base",
    "ConsoleSession",
    "DeliveryAttempt",
    "IdempotencyRecord",
    "Merchant",
    "Operator",
    "OperatorAction",
    "OutboxEvent",
    "Payment",
    "PaymentTransition",
    "ProviderCallback",
    "ProviderStatusRead",
    "Refund",
    "RefundTransition",
    "SaleorInstallation",
    "ServerSecret",
    "SmsReceipt",
]
