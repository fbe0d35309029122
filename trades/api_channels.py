"""The API of a trader's notification channels (issue 21): thin, the rules are in
`trades.services.channels` / `channel_delivery` / `push`. A channel's URL is write-only: answers
carry its hint ("tgram://…4f2"), never the URL. A browser's push subscription is write-only too:
answers carry its push service's host and the endpoint's SHA-256 (how a page finds its own)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from tradeoptions.api import FlagField, OwnedViewSetMixin, TextField, TraderWords

from . import selectors, services
from .models import (
    ChannelKind,
    ChannelMessage,
    ChannelMessageStatus,
    NotificationChannel,
    NotificationEvent,
    PushSubscription,
    QuietMode,
)

EVENT_CHOICES = [(event.value, event.label) for event in services.CHOOSABLE_EVENTS]


@extend_schema_field({"type": "array", "items": {"type": "string", "enum": [value for value, _ in EVENT_CHOICES]}})
class EventsField(serializers.Field):
    """A list of event names, refused as a whole (one message on the field, in trader words)."""

    default_error_messages = {"invalid": "Pick events from the list."}

    def to_internal_value(self, data):
        choices = {value for value, _ in EVENT_CHOICES}
        if not isinstance(data, list) or not all(isinstance(item, str) and item in choices for item in data):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return list(value)


class NotificationChannelSerializer(TraderWords, serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = TextField(max_length=60, help_text="What the trader calls it: \"My Telegram\".")
    url = TextField(write_only=True, max_length=1000, help_text=(
        "The Apprise URL (tgram://bot-token/chat-id, discord://…, mailto://…, ntfy://topic). Write-only: "
        "answers show only url_hint. Left out on a change: the URL stays."))
    url_hint = serializers.CharField(read_only=True, help_text="The scheme and last three characters.")
    kind = serializers.ChoiceField(choices=ChannelKind.choices, read_only=True, help_text=(
        "APPRISE: a URL's channel. WEB_PUSH: one browser's push subscription (made and removed at "
        "/api/push-subscriptions; it takes events, quiet hours and a name here, never a URL)."))
    enabled = FlagField(required=False)
    events = EventsField(required=False, help_text="Which events go to this channel.")
    quiet_start = serializers.TimeField(required=False, allow_null=True, format="%H:%M",
                                        help_text="New York time quiet hours start (with quiet_end; both null: none).")
    quiet_end = serializers.TimeField(required=False, allow_null=True, format="%H:%M",
                                      help_text="New York time quiet hours end; may be past midnight.")
    quiet_mode = serializers.ChoiceField(choices=QuietMode.choices, required=False, help_text=(
        "HOLD: messages in quiet hours are sent when they end; DROP: they are not sent. Critical ones "
        "(an unprotected position, an over-sold contract, a refused broker token) go through either way."))
    created_at = serializers.DateTimeField(read_only=True)

    labels = {"url": "channel URL", "quiet_start": "start of quiet hours", "quiet_end": "end of quiet hours",
              "quiet_mode": "choice for quiet hours", "enabled": "on/off choice"}

    def channel_input(self) -> services.ChannelInput:
        data = self.validated_data
        return services.ChannelInput(
            name=data.get("name"), url=data.get("url"), enabled=data.get("enabled"), events=data.get("events"),
            quiet_start=data.get("quiet_start"), quiet_end=data.get("quiet_end"), quiet_mode=data.get("quiet_mode"),
            quiet_hours_given="quiet_start" in data or "quiet_end" in data)


class ChannelMessageSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=NotificationEvent.choices)
    status = serializers.ChoiceField(choices=ChannelMessageStatus.choices)

    class Meta:
        model = ChannelMessage
        fields = ["id", "kind", "title", "status", "attempts", "error", "created_at", "next_attempt_at", "finished_at"]
        read_only_fields = fields


class NotificationChannelViewSet(OwnedViewSetMixin, viewsets.GenericViewSet):
    """The trader's notification channels: add, change, remove, send a test, read the log."""

    serializer_class = NotificationChannelSerializer
    queryset = NotificationChannel.objects.none()
    pagination_class = None
    lookup_value_regex = r"\d+"
    # A URL's host is resolved (DNS, maybe slow) before the channel is written: no request
    # transaction may hold a connection meanwhile; the services open their own.
    stepwise_actions = frozenset({"create", "update", "partial_update"})

    def owned_queryset(self, user):
        return selectors.channel_list(user=user)

    @extend_schema(summary="The trader's notification channels (URLs never shown)")
    def list(self, request):
        return Response(self.get_serializer(self.get_queryset(), many=True).data)

    @extend_schema(summary="One notification channel")
    def retrieve(self, request, pk=None):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(summary="Add a notification channel (an Apprise URL)",
                   responses={201: NotificationChannelSerializer})
    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channel = self._refused_in_words(lambda: services.channel_create(user=request.user,
                                                                         data=serializer.channel_input()))
        return Response(self.get_serializer(channel).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Change a notification channel (what is sent)")
    def partial_update(self, request, pk=None):
        serializer = self.get_serializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        channel = self._refused_in_words(lambda: services.channel_update(
            user=request.user, channel_id=self._id(pk), data=serializer.channel_input()))
        return Response(self.get_serializer(channel).data)

    @extend_schema(summary="Change a notification channel (what is sent)")
    def update(self, request, pk=None):
        return self.partial_update(request, pk)

    @extend_schema(summary="Remove a notification channel and its delivery log")
    def destroy(self, request, pk=None):
        self._refused_in_words(lambda: services.channel_delete(user=request.user, channel_id=self._id(pk)))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="Send a test message (see the delivery log for how it went)", request=None,
                   responses={202: ChannelMessageSerializer})
    @action(detail=True, methods=["post"], url_path="test")
    def send_test(self, request, pk=None):
        message = self._refused_in_words(lambda: services.channel_test_send(user=request.user,
                                                                            channel_id=self._id(pk)))
        return Response(ChannelMessageSerializer(message).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(summary="The channel's last deliveries: status and error, newest first",
                   responses={200: ChannelMessageSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def log(self, request, pk=None):
        channel = self.get_object()
        return Response(ChannelMessageSerializer(selectors.channel_log(user=request.user, channel_id=channel.pk),
                                                 many=True).data)

    @staticmethod
    def _id(pk) -> int:
        try:
            return int(pk)
        except (TypeError, ValueError):
            raise NotFound from None

    @staticmethod
    def _refused_in_words(call):
        try:
            return call()
        except services.ChannelRefused as refused:
            raise ValidationError({refused.field: [str(refused)]}) from None
        except NotificationChannel.DoesNotExist:
            raise NotFound("No such notification channel.") from None


@extend_schema_field({"type": "object", "required": ["p256dh", "auth"], "properties": {
    "p256dh": {"type": "string", "maxLength": 200, "description": "The browser's P-256 public key, base64url."},
    "auth": {"type": "string", "maxLength": 100, "description": "The browser's 16-byte secret, base64url."}}})
class PushKeysField(serializers.Field):
    """The subscription's keys, refused as a whole (one message on the field): the service says
    what is wrong with them."""

    default_error_messages = {"invalid": "Give the browser's push keys: p256dh and auth, as it gives them."}

    def to_internal_value(self, data):
        if not isinstance(data, dict) or not all(isinstance(data.get(name), str) and 0 < len(data[name]) <= limit
                                                 for name, limit in (("p256dh", 200), ("auth", 100))):
            self.fail("invalid")
        return {"p256dh": data["p256dh"], "auth": data["auth"]}

    def to_representation(self, value):
        return None


class PushSubscriptionSerializer(TraderWords, serializers.Serializer):
    """PushSubscription.toJSON() as the browser gives it, plus a name for the device."""

    id = serializers.IntegerField(read_only=True)
    endpoint = TextField(write_only=True, max_length=1000, help_text="The push service's URL for this browser.")
    keys = PushKeysField(write_only=True)
    expirationTime = serializers.IntegerField(write_only=True, required=False, allow_null=True,  # noqa: N815
                                              help_text="As the browser gives it; not used.")
    device = TextField(write_only=True, required=False, allow_blank=True, max_length=60,
                       help_text="What to call the device (\"Phone\"); its channel's name.")
    channel = serializers.IntegerField(source="channel_id", read_only=True,
                                       help_text="The device's notification channel (events, quiet hours, log).")
    name = serializers.CharField(source="channel.name", read_only=True)
    enabled = serializers.BooleanField(source="channel.enabled", read_only=True)
    endpoint_host = serializers.CharField(read_only=True, help_text="The push service's host.")
    endpoint_sha256 = serializers.CharField(read_only=True, help_text=(
        "The hex SHA-256 of the endpoint: a page compares its own subscription's to find it here."))
    created_at = serializers.DateTimeField(read_only=True)

    labels = {"endpoint": "push endpoint", "keys": "push keys", "device": "device name"}


class PushSubscriptionViewSet(OwnedViewSetMixin, viewsets.GenericViewSet):
    """The trader's devices that take pushes: a browser subscribes here after the trader opts in
    on it, and unsubscribes when they opt out."""

    serializer_class = PushSubscriptionSerializer
    queryset = PushSubscription.objects.none()
    pagination_class = None
    lookup_value_regex = r"\d+"
    # The endpoint's host is resolved (DNS) before the subscription is written: see the channels'.
    stepwise_actions = frozenset({"create"})

    def owned_queryset(self, user):
        return selectors.push_subscription_list(user=user)

    @extend_schema(summary="The trader's devices that take pushes (endpoints and keys never shown)")
    def list(self, request):
        return Response(self.get_serializer(self.get_queryset(), many=True).data)

    @extend_schema(summary="One device that takes pushes")
    def retrieve(self, request, pk=None):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(summary="Push to this browser (its PushSubscription.toJSON()); the same endpoint again: 200",
                   responses={201: PushSubscriptionSerializer, 200: PushSubscriptionSerializer})
    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            subscription, created = services.push_subscribe(
                user=request.user, endpoint=data["endpoint"], p256dh=data["keys"]["p256dh"],
                auth=data["keys"]["auth"], device=data.get("device", ""))
        except services.ChannelRefused as refused:
            raise ValidationError({refused.field: [str(refused)]}) from None
        return Response(self.get_serializer(subscription).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(summary="Stop pushing to the device: its subscription, channel and delivery log go")
    def destroy(self, request, pk=None):
        try:
            services.push_unsubscribe(user=request.user, subscription_id=NotificationChannelViewSet._id(pk))
        except PushSubscription.DoesNotExist:
            raise NotFound("No such push subscription.") from None
        return Response(status=status.HTTP_204_NO_CONTENT)
