"""Slack's request signing (X-Slack-Signature v0) and the two body encodings Slack uses: a form for
slash commands, a form with one JSON `payload` field for interactivity."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

FORM = "application/x-www-form-urlencoded"


def encode_form(fields: Mapping[str, str]) -> bytes:
    return urlencode(fields).encode()


def encode_interaction(payload: dict[str, Any]) -> bytes:
    """Interactivity bodies are a form with one field holding the JSON payload."""
    return ("payload=" + quote(json.dumps(payload))).encode()


def signature(body: bytes, secret: str, timestamp: int) -> str:
    basestring = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), basestring, hashlib.sha256).hexdigest()


def signed_headers(
    body: bytes, secret: str, timestamp: int | None = None, content_type: str = FORM
) -> dict[str, str]:
    """The headers that make `body` a request from Slack (X-Slack-Signature v0)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": signature(body, secret, timestamp),
    }
