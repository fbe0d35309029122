"""The price history the monitor writes: one row per trade per cycle slot and kind.

Millions of rows are expected. The unique (trade, timestamp, kind) index serves both "latest
snapshot of a trade" (backward scan) and "one trade's chart in time order"; a BRIN index on the
time column keeps range scans and retention cheap at a tiny size.
"""

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import Q

from trades.models import GREEK, PRICE, PaperTrade


class SnapshotKind(models.TextChoices):
    INTRADAY = "INTRADAY", "Intraday"
    PRE_MARKET = "PRE_MARKET", "Pre-market bookend"
    POST_MARKET = "POST_MARKET", "Post-market bookend"
    FILL = "FILL", "Fill"


class PriceSnapshot(models.Model):
    # No index of its own: the unique (trade, timestamp, kind) below leads with trade_id and serves
    # every per-trade read; a second index would only cost ~a third of the table's index space.
    trade = models.ForeignKey(PaperTrade, on_delete=models.CASCADE, related_name="snapshots", db_index=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    timestamp = models.DateTimeField(help_text="The cycle's scheduled slot, not the time of the write.")
    kind = models.CharField(max_length=12, choices=SnapshotKind.choices, default=SnapshotKind.INTRADAY)
    mark_price = models.DecimalField(**PRICE)
    bid = models.DecimalField(**PRICE, null=True, blank=True)
    ask = models.DecimalField(**PRICE, null=True, blank=True)
    delta = models.DecimalField(**GREEK)
    gamma = models.DecimalField(**GREEK)
    theta = models.DecimalField(**GREEK)
    vega = models.DecimalField(**GREEK)
    iv = models.DecimalField(**GREEK)
    underlying = models.DecimalField(**PRICE, null=True, blank=True)
    source = models.CharField(max_length=16, help_text="Market-data source that gave the quote.")
    delayed = models.BooleanField(default=False, db_default=False,
                                  help_text="The source is late by design (ORATS delayed, Tradier sandbox).")
    quote_time = models.DateTimeField(null=True, blank=True, help_text="The provider's own quote time.")

    class Meta:
        ordering = ["trade", "timestamp"]
        constraints = [
            models.UniqueConstraint(fields=["trade", "timestamp", "kind"], name="snapshot_one_per_slot"),
            models.CheckConstraint(
                condition=Q(kind__in=SnapshotKind.values), name="snapshot_kind_known"
            ),
            models.CheckConstraint(
                condition=Q(mark_price__gte=0)
                & (Q(bid__isnull=True) | Q(bid__gte=0))
                & (Q(ask__isnull=True) | Q(ask__gte=0)),
                name="snapshot_prices_not_negative",
            ),
        ]
        indexes = [BrinIndex(fields=["timestamp"], name="snapshot_time_brin")]

    def __str__(self) -> str:
        return f"{self.trade_id} {self.kind} {self.timestamp:%Y-%m-%d %H:%M} {self.mark_price}"
