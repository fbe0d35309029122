"""Writes of the trades app. Each function takes the acting user explicitly and is atomic.

Split by concern: `accounts` (traders and settings), `lifecycle` (the state machine's one
gate and the audit log), `notifications` (the trader's webhook), `idempotency`, `opening`,
`closing`, `brackets`, `protection` (keeping held positions protected), `orphans` (our orders
no active trade accounts for), `broker_health` (broker trouble the monitor meets) and `orders`
(talking to the broker for a trade). Import from here.
"""

from .accounts import (
    LIVE_CONFIRMATION,
    account_settings_for,
    account_settings_update,
    encrypted_secrets_rotate,
    user_create,
)
from .brackets import brackets_adjust
from .broker_health import broker_polling_paused, broker_trouble_clear, broker_trouble_record, broker_troubles_of
from .closing import close_confirm, close_outcome, trade_close
from .context import (
    CONTEXT_PARTS,
    EntryContextCollector,
    trade_context_fill,
    use_entry_context_collector,
)
from .errors import (
    BracketReplaceFailed,
    BracketWouldFill,
    BrokerDown,
    BrokerNotConfigured,
    BrokerOutcomeUnknown,
    BrokerReauthenticate,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidTradeInput,
    InvalidTransition,
    LiveTradingOff,
    OrderRefused,
    PositionUnprotected,
    RiskLimitExceeded,
    TradeError,
    VersionConflict,
)
from .idempotency import (
    IDEMPOTENCY_KEY_TTL,
    IdempotencyClaim,
    KeyedAnswer,
    StoredAnswer,
    idempotency_claim,
    idempotency_keys_purge,
    idempotency_release,
    idempotency_store,
    idempotent,
    request_fingerprint,
)
from .lifecycle import event_record, trade_staff_edit, trade_transition
from .notifications import (
    DeliveryOutcome,
    UnsafeWebhookTarget,
    broker_auth_failure_announce,
    webhook_deliver,
    webhook_events_resend,
    webhook_retry_delay,
    webhook_secret_rotate,
    webhook_url_check,
)
from .opening import (
    CONTEXT_FIELDS,
    TradeOpenInput,
    TradeResult,
    trade_entry_update,
    trade_open,
    trade_open_check,
    trade_risk,
)
from .orders import trade_order_ids
from .orphans import finished_order_seen, finished_orders_to_read, order_is_adopted, orphans_guard
from .protection import bracket_attach, bracket_protect, needs_bracket

__all__ = [
    "CONTEXT_FIELDS", "CONTEXT_PARTS", "EntryContextCollector", "trade_context_fill", "use_entry_context_collector",
    "IDEMPOTENCY_KEY_TTL", "LIVE_CONFIRMATION", "BracketReplaceFailed", "BracketWouldFill",
    "BrokerDown", "BrokerNotConfigured", "BrokerOutcomeUnknown", "BrokerReauthenticate", "IdempotencyKeyInFlight",
    "IdempotencyKeyReused", "InvalidTradeInput", "InvalidTransition", "LiveTradingOff", "OrderRefused",
    "PositionUnprotected", "RiskLimitExceeded", "StoredAnswer", "TradeError", "TradeOpenInput", "TradeResult",
    "IdempotencyClaim",
    "VersionConflict", "account_settings_for", "account_settings_update", "brackets_adjust", "encrypted_secrets_rotate",
    "close_confirm", "close_outcome", "event_record", "idempotency_claim", "idempotency_keys_purge",
    "idempotency_release", "idempotent", "KeyedAnswer",
    "idempotency_store", "request_fingerprint", "trade_close", "trade_entry_update", "trade_open", "trade_open_check",
    "trade_risk", "trade_staff_edit", "trade_transition", "user_create",
    "broker_polling_paused", "broker_trouble_clear", "broker_trouble_record", "broker_troubles_of",
    "bracket_attach", "bracket_protect", "finished_order_seen", "finished_orders_to_read", "needs_bracket",
    "order_is_adopted", "orphans_guard",
    "trade_order_ids",
    "DeliveryOutcome", "UnsafeWebhookTarget", "broker_auth_failure_announce", "webhook_deliver",
    "webhook_events_resend", "webhook_retry_delay", "webhook_secret_rotate", "webhook_url_check",
]
