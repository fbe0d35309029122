"""Password guessing: every door that checks a password (`/login/`, `/admin/login/`, and HTTP Basic
on `POST /api/auth/token`) counts failures here, through django-axes, and is refused with 429 once
a limit is reached — even for the right password.

Counted in Redis, not in the request's transaction. django-axes' default handler writes its
failure row with the request's database connection, inside the transaction the request runs in;
an answer that rolls that transaction back (DRF marks it for rollback when it answers 401) erased
the count, and guessing was unlimited. An INCR in Redis is outside any database transaction: no
rollback can take it back, and it is atomic, so parallel guesses cannot outrun the count either.

Two limits, both over `AXES_COOLOFF_TIME` after the last counted failure:
* `AXES_FAILURE_LIMIT` failures for one username from one client address (a mistyped password
  locks out only the typist);
* `LOGIN_FAILURE_LIMIT_PER_USERNAME` (higher) failures for one username from any addresses: a guesser
  who spreads his attempts over many addresses (a botnet, password spraying) meets this one. Its
  price would be that anyone may lock a known username by failing that often, and keep it locked.
  So an address from which the user signed in with her password within `LOGIN_KNOWN_ADDRESS_DAYS`
  is exempt from it (still under the first limit): at home or at the office she still gets in
  while her name is sprayed from elsewhere. From a new address she meets the lock; existing
  sessions and API tokens keep working, and `manage.py axes_reset_username` lifts it.
A guess refused by the lock was never checked, so it is not counted: a lock ends one cool-off
after the failure that set it.

Existing and unknown usernames are alike: the counters key on the name as typed, whether or not a
user has it; a locked answer is decided before any password is checked (no hash for either) and is
the same response, with no username in it. (Below the limit, Django's ModelBackend already hashes
the password of an unknown user to take as long as a known one.)

Redis down: fails closed. Reading or counting raises; the login page answers 503 ("Redis
unavailable", tradeoptions/outages.py) and the token endpoint answers 503 in the API's error shape.
No password is checked while the count cannot be kept.

The client address comes from `client_address`: `REMOTE_ADDR`, or behind `TRUSTED_PROXY_COUNT`
proxies the address the outermost of them saw (docs/operations.md).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging

import redis
from axes.handlers.base import AbstractAxesHandler, AxesBaseHandler
from axes.helpers import get_client_username, get_cool_off
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django_redis import get_redis_connection
from rest_framework.authentication import SessionAuthentication

log = logging.getLogger(__name__)

LOCKED_MESSAGE = "Too many failed sign-ins. Try again later."


def client_address(request: HttpRequest) -> str | None:
    """The address of whoever sent the request, as far as it can be trusted (axes'
    `AXES_CLIENT_IP_CALLABLE`; DRF's throttles read the same chain through `NUM_PROXIES`).

    With `TRUSTED_PROXY_COUNT = 0` (direct exposure) only `REMOTE_ADDR`: X-Forwarded-For is the
    client's own say and is ignored. Behind N proxies, each appends to X-Forwarded-For the address it
    got the request from, so the client is the N-th entry from the right; whatever stands left of it
    the client may have written. Fewer entries than proxies, or not an address there: the request did
    not come the configured way, and `REMOTE_ADDR` is all that is known.
    """
    remote = request.META.get("REMOTE_ADDR")
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if len(hops) < count:
        return remote
    try:
        return str(ipaddress.ip_address(hops[-count]))
    except ValueError:
        return remote


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _cool_off_seconds(request=None) -> int:
    return max(1, int(get_cool_off(request).total_seconds()))


class LoginFailures(AbstractAxesHandler, AxesBaseHandler):
    """django-axes' handler (`AXES_HANDLER`): the two failure counters in Redis, and the addresses a
    user signed in from.

    Keys, under `LOGIN_FAILURES_PREFIX`: `name:<digest of username>` and
    `pair:<digest of username>:<address>` (a digest keeps any typed name to a bounded key; the
    address is kept readable so that `axes_reset_ip` can find it), both expiring a cool-off after
    the last failure; `known:<digest of username>:<digest of address>` for `LOGIN_KNOWN_ADDRESS_DAYS`
    after the last sign-in from there (the reset commands leave these: they lift locks).
    """

    @staticmethod
    def _redis():
        return get_redis_connection(settings.AXES_CACHE)

    @staticmethod
    def _keys(request, credentials) -> tuple[str, str, str]:
        """The name's counter, the name-and-address counter, and the name-and-address memory of a
        sign-in (with no address known, a key nothing ever writes)."""
        name = _digest(get_client_username(request, credentials) or "")
        prefix = settings.LOGIN_FAILURES_PREFIX
        address = request.axes_ip_address
        return (f"{prefix}:name:{name}", f"{prefix}:pair:{name}:{address or '-'}",
                f"{prefix}:known:{name}:{_digest(address) if address else '-'}")

    def _counts(self, request, credentials) -> tuple[int, int, bool]:
        name, pair, known = self._redis().mget(self._keys(request, credentials))
        return int(name or 0), int(pair or 0), known is not None

    @staticmethod
    def _over(name_count: int, pair_count: int, known: bool) -> bool:
        """Locked: too many failures from this address, or, unless the user signed in from here
        lately, too many from anywhere."""
        if pair_count >= settings.AXES_FAILURE_LIMIT:
            return True
        return not known and name_count >= settings.LOGIN_FAILURE_LIMIT_PER_USERNAME

    def get_failures(self, request, credentials=None) -> int:
        """axes' notion of "failures": this username from this address."""
        return self._counts(request, credentials)[1]

    def is_locked(self, request, credentials=None) -> bool:
        return self._over(*self._counts(request, credentials))

    @staticmethod
    def _mark_locked(request, credentials) -> None:
        """Tell AxesMiddleware to answer with the lockout response. Under DRF the request axes sees
        is DRF's wrapper; the middleware sees the Django request inside it, so both are marked."""
        for target in (request, getattr(request, "_request", None)):
            if target is not None:
                target.axes_locked_out = True
                target.axes_credentials = credentials

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        if request is None:  # axes' backend refuses to authenticate without one; nothing to key on
            return
        if request.axes_locked_out:  # refused by the lock: the password was never checked
            self._mark_locked(request, credentials)
            return
        name_key, pair_key, known_key = self._keys(request, credentials)
        ttl = _cool_off_seconds(request)
        with self._redis().pipeline(transaction=True) as pipe:
            name_count, _, pair_count, _, known = pipe.incr(name_key).expire(name_key, ttl).incr(pair_key).expire(
                pair_key, ttl).exists(known_key).execute()
        request.axes_failures_since_start = pair_count
        log.warning("Login failure %d of %d for this username and address (%d of %d from any address), path %s",
                    pair_count, settings.AXES_FAILURE_LIMIT, name_count, settings.LOGIN_FAILURE_LIMIT_PER_USERNAME,
                    request.axes_path_info)
        if self._over(name_count, pair_count, bool(known)):
            log.warning("Login locked for %d s: too many failures (%d from this address, %d from any)", ttl,
                        pair_count, name_count)
            self._mark_locked(request, credentials)

    def user_logged_in(self, sender, request, user, **kwargs):
        """A success clears this address's count for the name, not the name's own: that one counts
        guesses from everywhere, and the owner signing in says nothing about them. It also remembers
        the address for `LOGIN_KNOWN_ADDRESS_DAYS`, exempting it from the name's own limit — when a
        password was checked: not for a session that asks the token endpoint for a token, nor for a
        sign-in without a client address (tests' `force_login`).

        Best effort: a count left behind or an address not remembered (Redis just went away) only
        costs the user a lock she might otherwise have passed; the sign-in itself stands."""
        _, pair_key, known_key = self._keys(request, {"username": user.get_username()})
        remember = settings.LOGIN_KNOWN_ADDRESS_DAYS > 0 and request.axes_ip_address and not isinstance(
            getattr(request, "successful_authenticator", None), SessionAuthentication)
        try:
            with self._redis().pipeline(transaction=True) as pipe:
                if settings.AXES_RESET_ON_SUCCESS:
                    pipe.delete(pair_key)
                if remember:
                    pipe.set(known_key, 1, ex=max(1, int(settings.LOGIN_KNOWN_ADDRESS_DAYS * 86400)))
                pipe.execute()
        except redis.RedisError:
            log.warning("Login failures of a signed-in user not cleared, address not remembered: Redis unavailable",
                        exc_info=True)

    def user_logged_out(self, sender, request, user, **kwargs):
        pass

    def reset_attempts(self, *, ip_address=None, username=None, ip_or_username=False) -> int:
        """For axes' reset commands (`axes_reset`, `axes_reset_username`, `axes_reset_ip`, ...)."""
        prefix = settings.LOGIN_FAILURES_PREFIX
        if username is None and ip_address is None:
            patterns = [f"{prefix}:name:*", f"{prefix}:pair:*"]
        else:
            name = _digest(username) if username is not None else None
            patterns = []
            if name and (ip_address is None or ip_or_username):
                patterns += [f"{prefix}:name:{name}", f"{prefix}:pair:{name}:*"]
            if ip_address and (username is None or ip_or_username):
                patterns.append(f"{prefix}:pair:*:{ip_address}")
            if name and ip_address and not ip_or_username:
                patterns.append(f"{prefix}:pair:{name}:{ip_address}")
        client = self._redis()
        keys = {key for pattern in patterns for key in client.scan_iter(match=pattern, count=500)}
        return client.delete(*keys) if keys else 0


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """The one answer to a locked sign-in (axes' `AXES_LOCKOUT_CALLABLE`): 429 with Retry-After,
    in the API's error shape under /api/, a page elsewhere. Nothing in it depends on the username."""
    if request.path.startswith("/api/"):
        response = JsonResponse({"type": "client_error",
                                 "errors": [{"code": "throttled", "detail": LOCKED_MESSAGE, "attr": None}]},
                                status=429)
    else:
        response = render(request, "registration/locked_out.html", {"message": LOCKED_MESSAGE}, status=429)
    response["Retry-After"] = str(_cool_off_seconds(request))
    return response
