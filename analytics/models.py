"""Forensic values computed after a trade closes, from its recorded price path.

The four learning targets the data set needs most live on `PaperTrade` itself (`target_pnl_15m`,
`target_pnl_1h`, `target_mfe_pct`, `target_mae_pct`); what else the forensic job learns about a
trade (when the best and worst marks came, which exit the path touched first, how many snapshots
it was computed from) lives here, one row per trade, so the trades table does not grow with every
new forensic question. Rows are owned like every user table (row-level security on `owner_id`).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from trades.models import MONEY, PaperTrade

PCT = {"max_digits": 10, "decimal_places": 4, "null": True, "blank": True}


class FirstTouch(models.TextChoices):
    TP = "TP", "Take-profit touched first"
    SL = "SL", "Stop-loss touched first"
    NEITHER = "NEITHER", "Neither touched on the recorded path"


class BarFallback(models.TextChoices):
    """What became of the provider's minute bars for a trade (see `analytics.services`)."""

    NOT_NEEDED = "NOT_NEEDED", "Snapshots were dense enough"
    USED = "USED", "Minute bars filled a thin path"
    NO_BARS = "NO_BARS", "Thin path; the provider had no bars for the contract"
    UNSUPPORTED = "UNSUPPORTED", "Thin path; the provider offers no minute bars of options"
    FAILED = "FAILED", "Thin path; the provider failed (a later run tries again)"


class TradeForensics(models.Model):
    trade = models.OneToOneField(PaperTrade, on_delete=models.CASCADE, primary_key=True, related_name="forensics")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    pnl_15m = models.DecimalField(**MONEY, null=True, blank=True)
    pnl_1h = models.DecimalField(**MONEY, null=True, blank=True)
    mfe_pct = models.DecimalField(**PCT)
    mae_pct = models.DecimalField(**PCT)
    mfe_at = models.DateTimeField(null=True, blank=True, help_text="When the best mark was first seen.")
    mae_at = models.DateTimeField(null=True, blank=True, help_text="When the worst mark was first seen.")
    first_touch = models.CharField(max_length=8, choices=FirstTouch.choices)
    first_touch_at = models.DateTimeField(null=True, blank=True)
    snapshot_count = models.PositiveIntegerField(help_text="Snapshots between entry and close that were used.")
    bar_count = models.PositiveIntegerField(default=0, help_text="Provider minute bars added to a thin path.")
    bar_fallback = models.CharField(max_length=12, choices=BarFallback.choices, default=BarFallback.NOT_NEEDED)
    # The greeks attribution of the realized P&L (`analytics.attribution`), in dollars of the
    # position; all null when the snapshots explain nothing (none, one, or none with greeks).
    greeks_delta = models.DecimalField(**MONEY, null=True, blank=True)
    greeks_gamma = models.DecimalField(**MONEY, null=True, blank=True)
    greeks_theta = models.DecimalField(**MONEY, null=True, blank=True)
    greeks_vega = models.DecimalField(**MONEY, null=True, blank=True)
    greeks_residual = models.DecimalField(**MONEY, null=True, blank=True)
    greeks_unattributed = models.DecimalField(**MONEY, null=True, blank=True,
                                              help_text="The marks' change over steps without greeks.")
    greeks_execution = models.DecimalField(**MONEY, null=True, blank=True,
                                           help_text="The fills against the first and last marks.")
    greeks_steps = models.PositiveIntegerField(default=0, help_text="Steps between snapshots.")
    greeks_steps_missing = models.PositiveIntegerField(default=0, help_text="Steps whose snapshots lacked greeks.")
    computed_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "trade forensics"
        constraints = [
            models.CheckConstraint(condition=Q(first_touch__in=FirstTouch.values), name="forensics_first_touch_known"),
            models.CheckConstraint(condition=Q(bar_fallback__in=BarFallback.values),
                                   name="forensics_bar_fallback_known"),
        ]

    def __str__(self) -> str:
        return f"forensics of trade {self.trade_id}"
