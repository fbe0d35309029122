"""A push service stand-in and the browser it delivers to, for Web Push tests.

`PushService` is a real HTTP server on 127.0.0.1 (the webhook receiver) that records each push
request and answers as scripted (201 unless told: 410 for a subscription the browser dropped).
`Browser` holds what a browser keeps for a subscription (its P-256 key pair and auth secret), gives
the `PushSubscription.toJSON()` a page would send, and reads what we sent: it decrypts the body
(RFC 8291, aes128gcm) with its private key, and checks the VAPID header (RFC 8292) against our
public key, as the real push service and browser do.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass, field

import http_ece
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.fakes.webhook_receiver import ReceivedRequest, WebhookReceiver


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PushService(WebhookReceiver):
    """Answers 201 Created (what push services answer) unless scripted otherwise."""

    def start(self) -> PushService:
        super().start()
        self.answer(201)
        return self

    def endpoint(self, token: str) -> str:
        return f"http://127.0.0.1:{self.port}/push/v1/{token}"


@dataclass
class Browser:
    """One browser's subscription keys at a push service's endpoint."""

    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def subscription_json(self) -> dict:
        public = self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                    serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint, "expirationTime": None,
                "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)}}

    def read(self, request: ReceivedRequest) -> dict:
        """The payload, decrypted as the browser would; fails if it was not encrypted to us."""
        assert request.headers["Content-Encoding"] == "aes128gcm"
        plain = http_ece.decrypt(request.body, private_key=self.key, auth_secret=self.auth, version="aes128gcm")
        return json.loads(plain)


def vapid_claims(request: ReceivedRequest, *, public_key: str) -> dict:
    """The VAPID token's claims, once its signature checks against `public_key` (what the push
    service does); raises InvalidSignature or AssertionError otherwise."""
    scheme, _, params = request.headers["Authorization"].partition(" ")
    assert scheme == "vapid", scheme
    values = dict(part.strip().split("=", 1) for part in params.split(","))
    assert values["k"] == public_key, "signed with another key than the page subscribed with"
    header, claims, signature = values["t"].split(".")
    raw = b64url_decode(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    verifier = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(public_key))
    verifier.verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    assert json.loads(b64url_decode(header)) == {"typ": "JWT", "alg": "ES256"}
    decoded = json.loads(b64url_decode(claims))
    assert decoded["exp"] <= time.time() + 24 * 3600, "a VAPID token may live 24 hours at most"
    return decoded
