"""Ops admin for trades, their events, account settings and webhook deliveries. Tokens are
write-only here; webhook secrets are not shown at all."""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect

from brokers.models import BrokerMode
from tradeoptions.admin import ReadOnlyAdmin

from . import services
from .models import (
    FINAL_STATUSES,
    AccountSettings,
    ChannelMessage,
    NotificationChannel,
    PaperTrade,
    PushSubscription,
    TradeEvent,
    WebhookDelivery,
    WebhookEvent,
)


class TradeEventInline(admin.TabularInline):
    model = TradeEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "kind", "actor", "actor_user", "old_status", "new_status", "payload"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RefusedSave:
    """For admins whose `save_model` calls a service: a refusal (`request.staff_edit_refused`, set
    when the service raised and wrote nothing) is told to staff, and no admin log entry claims a
    change that was not made."""

    def log_change(self, request, obj, message):
        if not getattr(request, "staff_edit_refused", None):
            return super().log_change(request, obj, message)
        return None

    def response_change(self, request, obj):
        if refused := getattr(request, "staff_edit_refused", None):
            self.message_user(request, f"Not saved: {refused}", level=messages.ERROR)
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)


class PaperTradeForm(forms.ModelForm):
    """Only what staff may change (`services.STAFF_EDITABLE_FIELDS`), and the version the page
    was loaded at, so that a staff edit racing the monitor is refused rather than lost."""

    seen_version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)

    class Meta:
        model = PaperTrade
        fields = list(services.STAFF_EDITABLE_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["seen_version"].initial = self.instance.version


@admin.register(PaperTrade)
class PaperTradeAdmin(RefusedSave, admin.ModelAdmin):
    """Staff edits go through the trade services' one gate: the status, the contract, the brackets
    and everything the broker or the monitor holds are read-only here, and a final trade (closed,
    canceled, rejected) cannot be edited at all. Moving a trade needs the broker: the trader's close
    or the monitor does it, through `trade_transition`."""

    form = PaperTradeForm
    list_display = ["id", "owner", "option_symbol", "qty", "status", "close_reason", "strategy", "entry_price",
                    "current_price", "realized_pnl", "created_at"]
    list_filter = ["status", "close_reason", "strategy", "broker_mode", "owner"]
    search_fields = ["ticker", "option_symbol"]
    list_select_related = ["owner"]
    readonly_fields = [field.name for field in PaperTrade._meta.concrete_fields
                       if field.name not in services.STAFF_EDITABLE_FIELDS]
    inlines = [TradeEventInline]

    def has_add_permission(self, request):
        return False  # trades are opened through the trade services, which talk to the broker

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.status in FINAL_STATUSES:
            return False  # its record stays as it ended, for staff too (the transition table agrees)
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # the record of a trade is kept for good

    def save_model(self, request, obj, form, change):
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name != "seen_version"}
        try:
            services.trade_staff_edit(staff_user=request.user, trade_id=obj.pk,
                                      version=form.cleaned_data["seen_version"], changes=changes)
        except services.TradeError as problem:  # a race with the monitor or the trader: nothing written
            request.staff_edit_refused = problem.message



@admin.register(TradeEvent)
class TradeEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "trade", "owner", "kind", "actor", "old_status", "new_status"]
    list_filter = ["kind", "actor"]
    list_select_related = ["trade", "owner"]
    search_fields = ["trade__option_symbol"]


# What staff may change in a trader's settings (the webhook is the trader's own business).
SETTINGS_FIELDS = ["broker_mode", "tradier_account_id", "account_balance", "max_positions", "daily_loss_limit",
                   "heat_limit_pct", "commission_per_contract", "auto_refresh"]


class AccountSettingsForm(forms.ModelForm):
    """Tokens can be replaced or cleared, never read back: the form shows only whether one is set.
    The rules are the settings service's (`services.account_settings_check`), shown by field before
    anything is written; switching a trader to live needs what the API needs, the typed words too."""

    new_sandbox_token = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                                        help_text="Leave empty to keep the current token.")
    clear_sandbox_token = forms.BooleanField(required=False)
    new_live_token = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                                     help_text="Leave empty to keep the current token.")
    clear_live_token = forms.BooleanField(required=False)
    confirmation = forms.CharField(
        required=False, max_length=64, widget=forms.TextInput(attrs={"autocomplete": "off"}),
        help_text=f"To switch this account to live trading (real money), type {services.LIVE_CONFIRMATION}.",
    )

    # The service's names for what this form calls otherwise.
    SERVICE_FIELDS = {"tradier_sandbox_token": "new_sandbox_token", "tradier_live_token": "new_live_token"}

    class Meta:
        model = AccountSettings
        fields = SETTINGS_FIELDS

    def clean(self):
        data = super().clean()
        if self.errors:
            return data  # a field is already wrong: the rules below need every value
        try:
            services.account_settings_check(account=self.instance, **self.service_arguments())
        except services.InvalidTradeInput as refused:
            for name, texts in refused.field_errors.items():
                field = self.SERVICE_FIELDS.get(name, name)
                for text in texts:
                    self.add_error(field if field in self.fields else None, text)
        return data

    def service_arguments(self) -> dict:
        """What `account_settings_update` takes: the changed fields, each token (None keeps it,
        "" removes it) and the typed confirmation."""
        data = self.cleaned_data

        def token(new, clear):
            return data[new] if data.get(new) else ("" if data.get(clear) else None)

        return {
            "changes": {name: data[name] for name in self.changed_data if name in SETTINGS_FIELDS},
            "sandbox_token": token("new_sandbox_token", "clear_sandbox_token"),
            "live_token": token("new_live_token", "clear_live_token"),
            "confirmation": data.get("confirmation", ""),
        }


@admin.register(AccountSettings)
class AccountSettingsAdmin(RefusedSave, admin.ModelAdmin):
    """Staff change a trader's settings through the settings service, as the trader does: the same
    rules, and the change is in the trader's audit log with the staff member as its actor."""

    form = AccountSettingsForm
    list_display = ["owner", "broker_mode", "sandbox_token_set", "live_token_set", "account_balance", "max_positions"]
    list_filter = ["broker_mode"]
    list_select_related = ["owner"]
    readonly_fields = ["owner", "sandbox_token_set", "live_token_set", "created_at", "updated_at"]

    def has_add_permission(self, request):
        return False  # created with the user

    def has_delete_permission(self, request, obj=None):
        return False  # one per trader, for as long as the trader exists

    def save_model(self, request, obj, form, change):
        try:
            services.account_settings_update(user=obj.owner, staff_user=request.user, **form.service_arguments())
        except services.TradeError as problem:  # changed meanwhile so that a rule now refuses: nothing written
            request.staff_edit_refused = problem.message


    @admin.display(boolean=True, description="Sandbox token set")
    def sandbox_token_set(self, obj):
        return obj.has_broker_token(BrokerMode.TRADIER_SANDBOX)

    @admin.display(boolean=True, description="Live token set")
    def live_token_set(self, obj):
        return obj.has_broker_token(BrokerMode.TRADIER_LIVE)


class WebhookDeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    can_delete = False
    fields = ["attempt", "created_at", "target_host", "status_code", "error", "duration_ms"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    """What each trader's webhook was told, and every attempt at telling it."""

    list_display = ["created_at", "owner", "kind", "status", "attempts", "trade", "finished_at"]
    list_filter = ["status", "kind"]
    list_select_related = ["owner", "trade"]
    search_fields = ["id", "owner__username"]
    fields = ["id", "owner", "kind", "trade", "status", "attempts", "created_at", "finished_at", "payload"]
    readonly_fields = fields
    inlines = [WebhookDeliveryInline]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "owner", "event", "attempt", "target_host", "status_code", "error", "duration_ms"]
    list_filter = ["status_code"]
    list_select_related = ["owner", "event"]
    search_fields = ["event__id", "owner__username", "target_host"]


@admin.register(NotificationChannel)
class NotificationChannelAdmin(ReadOnlyAdmin):
    """Each trader's notification channels, by name and hint: the URL itself (credentials) is
    neither a field nor a column here, encrypted or not."""

    list_display = ["name", "owner", "kind", "url_hint", "enabled", "quiet_start", "quiet_end", "quiet_mode",
                    "created_at"]
    list_filter = ["kind", "enabled", "quiet_mode"]
    list_select_related = ["owner"]
    search_fields = ["name", "owner__username"]
    fields = ["owner", "name", "kind", "url_hint", "enabled", "events", "quiet_start", "quiet_end", "quiet_mode",
              "created_at", "updated_at"]
    readonly_fields = fields


@admin.register(ChannelMessage)
class ChannelMessageAdmin(ReadOnlyAdmin):
    """What each channel was told, and how its delivery went (status and error, never the URL)."""

    list_display = ["created_at", "owner", "channel", "kind", "status", "attempts", "error", "finished_at"]
    list_filter = ["status", "kind"]
    list_select_related = ["owner", "channel"]
    search_fields = ["id", "owner__username"]
    fields = ["id", "owner", "channel", "kind", "title", "body", "critical", "status", "attempts",
              "next_attempt_at", "error", "created_at", "finished_at"]
    readonly_fields = fields


@admin.register(PushSubscription)
class PushSubscriptionAdmin(ReadOnlyAdmin):
    """Each trader's devices that take pushes, by their push service's host: the endpoint (a
    capability URL) and the keys are neither a field nor a column here, encrypted or not."""

    list_display = ["created_at", "owner", "channel", "endpoint_host"]
    list_select_related = ["owner", "channel"]
    search_fields = ["owner__username", "endpoint_host"]
    fields = ["owner", "channel", "endpoint_host", "created_at"]
    readonly_fields = fields
