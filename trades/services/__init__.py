"""Writes of the trades app. Each function takes the acting user explicitly and is atomic.

Split by concern: `accounts` (traders and settings), `lifecycle` (the state machine's one
gate and the audit log), `notifications` (the trader's webhook), `channels` and
`channel_delivery` (their notification channels, through Apprise), `push` (Web Push to a
device, one more kind of channel), `idempotency`, `opening`, `closing`, `brackets`,
`protection` (keeping held positions protected), `orphans` (our orders no active trade
accounts for), `broker_health` (broker trouble the monitor meets), `orders` (talking to the
broker for a trade), and `marks` (the monitor's marks and analytics' forensic targets: only
trades writes the trade row). Import from here.
"""

from .accounts import (
    COMMISSION_RANGE,
    LIVE_CONFIRMATION,
    NAKED_SHORTS_CONFIRMATION,
    account_number_masked,
    account_settings_check,
    account_settings_for,
    account_settings_update,
    encrypted_secrets_rotate,
    strategy_presets_checked,
    user_create,
)
from .brackets import brackets_adjust, exit_policy_set
from .broker_health import (
    broker_forbidden_lift,
    broker_polling_paused,
    broker_trading_check,
    broker_trouble_clear,
    broker_trouble_record,
    broker_troubles_of,
)
from .channel_delivery import (
    ChannelOutcome,
    channel_message_deliver,
    channel_messages_resend,
    channel_messages_write,
    channel_test_send,
)
from .channels import (
    CHOOSABLE_EVENTS,
    ChannelInput,
    ChannelRefused,
    channel_create,
    channel_delete,
    channel_update,
    url_hint,
)
from .closing import (
    BROKER_FILL,
    EXPIRY,
    close_confirm,
    close_in_progress,
    close_outcome,
    close_resume,
    closes_in_progress,
    filled_exit,
    trade_close,
    trade_exit_filled,
    trade_expiry_settle,
    trade_net_exit_close,
    trade_policy_close,
)
from .context import (
    CONTEXT_PARTS,
    EntryContextCollector,
    trade_context_fill,
    use_entry_context_collector,
)
from .errors import (
    BracketReplaceFailed,
    BracketWouldFill,
    BrokerAccountForbidden,
    BrokerDown,
    BrokerNotConfigured,
    BrokerOutcomeUnknown,
    BrokerReauthenticate,
    CloseForbidden,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidTradeInput,
    InvalidTransition,
    LiveTradingOff,
    OrderAlreadyFilled,
    OrderRefused,
    OrdersBusy,
    PositionUnprotected,
    RiskLimitExceeded,
    TradeError,
    VersionConflict,
)
from .exit_parts import quantity_history, trade_parts
from .exit_policies import (
    CloseWhy,
    ExitDecision,
    ExitPolicy,
    ExitState,
    Observation,
    commission_per_share,
    exit_policy_checked,
    exit_policy_evaluate,
)
from .exit_policy_runs import ExitPoliciesReport, exit_policies_apply
from .expiry import LegSettlementPrice, live_legs, pin_risk_alert, spread_expiry_settle, spread_realized_pnl
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
from .legs import single_leg_fills_follow, single_leg_write
from .lifecycle import STAFF_EDITABLE_FIELDS, event_record, trade_flag, trade_staff_edit, trade_transition
from .marks import LegMark, TradeMark, TradeTargets, leg_marks_record, marks_record, targets_record
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
from .orders import bracket_ids, broker_of, exit_requests, order_summary, split_legs, trade_order_ids, trade_order_tag
from .orphans import finished_order_seen, finished_orders_to_read, order_is_adopted, orphans_guard
from .parts import part_sale_resume, trade_close_some, trade_part_sell
from .positions import trade_oversold_clear, trade_oversold_flag
from .protection import UNPROTECTED, bracket_lost, bracket_protect
from .push import PUSH_EVENTS, PushNotSetUp, push_public_key, push_subscribe, push_unsubscribe
from .risk import RiskRoom, TradePreview, active_exposure, max_loss_at, spread_heat
from .spread_closing import spread_close_confirm
from .spread_exits import NetExitsReport, spread_exits_watch
from .spread_opening import SpreadLegInput, SpreadOpenInput, spread_entry_update, spread_open, strategy_of
from .spread_preview import SpreadPreview, SpreadPreviewInput, spread_preview
from .working import Session, close_cancel, close_reprice, entry_cancel, entry_reprice, market_session

__all__ = [
    # Multi-leg trades (issue 19): opening, the entry's fill (the monitor's sync), risk on max loss,
    # exits watched on the held net and the closing multileg order.
    "NAKED_SHORTS_CONFIRMATION", "SpreadLegInput", "SpreadOpenInput", "spread_entry_update", "spread_open",
    "strategy_of", "max_loss_at", "spread_heat",
    "NetExitsReport", "spread_close_confirm", "spread_exits_watch", "trade_net_exit_close",
    "single_leg_fills_follow", "single_leg_write",
    "CONTEXT_FIELDS", "CONTEXT_PARTS", "EntryContextCollector", "trade_context_fill", "use_entry_context_collector",
    "IDEMPOTENCY_KEY_TTL", "LIVE_CONFIRMATION", "COMMISSION_RANGE", "BracketReplaceFailed", "BracketWouldFill",
    "BrokerAccountForbidden", "BrokerDown", "BrokerNotConfigured", "BrokerOutcomeUnknown", "BrokerReauthenticate",
    "CloseForbidden", "IdempotencyKeyInFlight",
    "IdempotencyKeyReused", "InvalidTradeInput", "InvalidTransition", "LiveTradingOff", "OrderRefused",
    "PositionUnprotected", "RiskLimitExceeded", "StoredAnswer", "TradeError", "TradeOpenInput", "TradeResult",
    "IdempotencyClaim",
    "VersionConflict", "account_number_masked", "account_settings_check", "account_settings_for",
    "account_settings_update", "brackets_adjust", "encrypted_secrets_rotate",
    "close_confirm", "close_in_progress", "closes_in_progress", "close_outcome", "close_resume",
    "BROKER_FILL", "EXPIRY", "filled_exit",
    "trade_exit_filled", "trade_expiry_settle", "trade_flag", "trade_oversold_clear", "trade_oversold_flag",
    "event_record", "idempotency_claim", "idempotency_keys_purge",
    "idempotency_release", "idempotent", "KeyedAnswer",
    "idempotency_store", "request_fingerprint", "trade_close", "trade_entry_update", "trade_open", "trade_open_check",
    "trade_risk", "STAFF_EDITABLE_FIELDS", "trade_staff_edit", "trade_transition", "user_create",
    "broker_forbidden_lift", "broker_trading_check", "broker_polling_paused", "broker_trouble_clear",
    "broker_trouble_record", "broker_troubles_of",
    "UNPROTECTED", "bracket_lost", "bracket_protect", "finished_order_seen", "finished_orders_to_read",
    "order_is_adopted", "orphans_guard", "strategy_presets_checked", "RiskRoom", "TradePreview", "active_exposure",
    "trade_order_ids",
    "DeliveryOutcome", "UnsafeWebhookTarget", "broker_auth_failure_announce", "webhook_deliver",
    "webhook_events_resend", "webhook_retry_delay", "webhook_secret_rotate", "webhook_url_check",
    "CHOOSABLE_EVENTS", "ChannelInput", "ChannelOutcome", "ChannelRefused", "channel_create", "channel_delete",
    "channel_message_deliver", "channel_messages_resend", "channel_messages_write", "channel_test_send",
    "channel_update", "url_hint",
    "PUSH_EVENTS", "PushNotSetUp", "push_public_key", "push_subscribe", "push_unsubscribe",
    # For the monitor, which places and reads a trade's orders with the same helpers.
    "bracket_ids", "broker_of", "exit_requests", "order_summary", "split_legs",
    "trade_order_tag",
    # For the monitor's marks and analytics' forensic targets: figures measured elsewhere, written here.
    "LegMark", "TradeMark", "TradeTargets", "leg_marks_record", "marks_record", "targets_record",
    # Working orders under the trader's control, and the session an order meets.
    "OrderAlreadyFilled", "OrdersBusy", "Session", "close_cancel", "close_reprice", "entry_cancel", "entry_reprice",
    "market_session",
    # Exit policies beyond the fixed bracket: the pure engine the monitor feeds.
    "ExitPoliciesReport", "exit_policies_apply", "exit_policy_set", "trade_policy_close",
    "CloseWhy", "ExitDecision", "ExitPolicy", "ExitState", "Observation", "exit_policy_checked",
    "exit_policy_evaluate", "commission_per_share",
    # Partial closes: selling a part (a scale-out, the trader's partial close) and reading the parts.
    "part_sale_resume", "quantity_history", "trade_close_some", "trade_part_sell", "trade_parts",
    # The strategy builder's preview of a multi-leg position (reads the market, writes nothing).
    "SpreadPreview", "SpreadPreviewInput", "spread_preview",
    # A multi-leg trade at expiry: its legs settled one by one, and pin risk told to the trader.
    "LegSettlementPrice", "live_legs", "pin_risk_alert", "spread_expiry_settle", "spread_realized_pnl",
]
