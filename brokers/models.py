from django.conf import settings
from django.db import models
from django.db.models.functions import Cast, Right, Substr


def _occ_part(start: int) -> Cast:
    """Two digits of the YYMMDD in an OCC symbol: its last 15 characters are always
    YYMMDD + C/P + 8 strike digits, whatever the root's length."""
    return Cast(Substr(Right("option_symbol", 15), start, 2), models.IntegerField())


# The contract's expiry date, from its OCC symbol. make_date, right, substr and the cast are all
# immutable, as a stored generated column needs.
OCC_EXPIRY = models.Func(_occ_part(1) + 2000, _occ_part(3), _occ_part(5), function="make_date",
                         output_field=models.DateField())


class BrokerMode(models.TextChoices):
    """Where a user's orders go. Live is one deliberate, guarded setting away from paper."""

    LOCAL_PAPER = "LOCAL_PAPER", "Local paper"
    TRADIER_SANDBOX = "TRADIER_SANDBOX", "Tradier sandbox"
    TRADIER_LIVE = "TRADIER_LIVE", "Tradier live"


class PaperAccount(models.Model):
    """A user's account at the local paper broker: the cash it started with (the user's
    account balance setting, refreshed at each placement)."""

    owner = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    starting_cash = models.DecimalField(max_digits=14, decimal_places=2)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"paper account of user {self.owner_id}"


class PaperOrder(models.Model):
    """An order at the built-in local paper broker. Rows survive restarts; legs of an OCO/OTOCO
    or of a multileg spread point at their parent, which carries the group's status."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="legs")
    order_class = models.CharField(max_length=8)  # option, oco, otoco, multileg (parents); option (legs)
    leg_index = models.PositiveSmallIntegerField(default=0)
    tag = models.CharField(max_length=255, blank=True, db_index=True)
    option_symbol = models.CharField(max_length=21, blank=True)
    underlying = models.CharField(max_length=8, blank=True)
    side = models.CharField(max_length=16, blank=True)
    order_type = models.CharField(max_length=12, blank=True)
    duration = models.CharField(max_length=4, default="day")
    quantity = models.PositiveIntegerField(default=0)
    limit_price = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    stop_price = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    # A multileg parent's pricing (market, debit, credit, even): its `limit_price` is then the net
    # per share, its `quantity` the spread's units, and `avg_fill_price` the net it filled at
    # (debit positive, credit negative).
    price_type = models.CharField(max_length=8, blank=True)
    status = models.CharField(max_length=16, default="open")
    # An OTOCO's exits wait, inactive, until the entry fills.
    active = models.BooleanField(default=True)
    # A stop-limit whose stop has been touched now works as a limit order.
    triggered = models.BooleanField(default=False)
    filled_quantity = models.PositiveIntegerField(default=0)
    avg_fill_price = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    reason = models.CharField(max_length=255, blank=True)
    # Buying power held back for a working buy: its limit or stop, or the ask when it arrived.
    reserve_price = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    # The session in which matching last looked at this order: the first look in a new session
    # is like an arrival (a gap through a resting limit fills at the better opening price).
    last_session_close = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["owner", "status"], name="paperorder_owner_status_idx"),
            models.Index(
                fields=["option_symbol"], condition=models.Q(status__in=["open", "pending", "partially_filled"]),
                name="paperorder_working_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(filled_quantity__lte=models.F("quantity")),
                                   name="paperorder_fill_within_quantity"),
        ]

    def __str__(self) -> str:
        return f"paper order {self.pk} {self.order_class} {self.status}"


class PaperFill(models.Model):
    """One execution, with the quote it filled against, so fill quality can be measured later."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    order = models.ForeignKey(PaperOrder, on_delete=models.CASCADE, related_name="fills")
    option_symbol = models.CharField(max_length=21)
    side = models.CharField(max_length=16)
    quantity = models.PositiveIntegerField()
    price = models.DecimalField(max_digits=12, decimal_places=4)
    commission = models.DecimalField(max_digits=12, decimal_places=2)
    bid = models.DecimalField(max_digits=12, decimal_places=4, null=True)
    ask = models.DecimalField(max_digits=12, decimal_places=4, null=True)
    mid = models.DecimalField(max_digits=12, decimal_places=4, null=True)
    quote_time = models.DateTimeField(null=True)
    filled_at = models.DateTimeField()
    # An expiry settlement (sold to the expiry at intrinsic value against the underlying's
    # close): on the books like a fill, but not an execution at a market quote.
    settlement = models.BooleanField(default=False)
    expiry = models.GeneratedField(expression=OCC_EXPIRY, output_field=models.DateField(), db_persist=True)
    # Set on every fill of the contract once the account's net position in it is back to zero
    # (a sale or the expiry settlement closed it): the expiry settlement looks only at fills of
    # positions still open, through the partial index below, however long the history grows.
    position_closed = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        indexes = [
            # Led by the owner: row-level security adds `owner_id = …` to every query, and with the
            # owner first this index beats the owner's foreign-key index for it on any statistics
            # (expiry alone left the planner torn between the two on a loaded test database).
            models.Index(fields=["owner", "expiry"], condition=models.Q(position_closed=False),
                         name="paperfill_open_expiry_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gt=0) & models.Q(price__gte=0),
                                   name="paperfill_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.option_symbol} @ {self.price}"
