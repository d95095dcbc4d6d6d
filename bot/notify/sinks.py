"""One delivery of one notice to one sink: the HTTP kinds (webhook, wecom, dingtalk) and email.

Each `deliver` makes one attempt and says how it failed: `Retry` (a timeout, a refused connection,
429, 5xx, a robot's non-zero errcode, an SMTP 4xx) or `GiveUp` (any other 4xx, an SMTP 5xx such as
a refused login). Their messages are made here from safe pieces only (the kind, a status, an error
code): a sink's URL carries its key (企业微信 `key=`, 钉钉 `access_token=`), so no exception text
that may quote it, nor the secret or password, ever reaches a log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
from email.message import EmailMessage

import aiohttp
import aiosmtplib
from yarl import URL

from bot.config.model import NotifySink
from bot.notify.messages import Notice, dingtalk_payload, email_subject, webhook_payload, wecom_payload

SIGNATURE_HEADER = "X-Deploybot-Signature"
SMTPS_PORT = 465  # implicit TLS; every other port speaks plain SMTP, upgraded when `starttls`


class Retry(Exception):
    """This attempt failed; a later one may not."""


class GiveUp(Exception):
    """No attempt will do better (the sink refused the request itself)."""


def webhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def dingtalk_url(url: str, secret: str, now_ms: int | None = None) -> str:
    """The robot's URL with `timestamp` (ms) and `sign` = urlencode(base64(HMAC-SHA256 of
    "{timestamp}\\n{secret}" keyed with the secret)) added, as 钉钉's 加签 asks."""
    if not secret:
        return url
    timestamp = str(int(time.time() * 1000) if now_ms is None else now_ms)
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest).decode())
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp}&sign={sign}"


def http_request(sink: NotifySink, notice: Notice) -> tuple[str, bytes, dict[str, str]]:
    """The URL, body and headers of one HTTP delivery."""
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if sink.kind == "webhook":
        body = _json(webhook_payload(notice))
        headers["X-Deploybot-Event"] = notice.event
        if sink.secret:
            headers[SIGNATURE_HEADER] = webhook_signature(sink.secret, body)
        return sink.url, body, headers
    if sink.kind == "wecom":
        return sink.url, _json(wecom_payload(notice)), headers
    return dingtalk_url(sink.url, sink.secret), _json(dingtalk_payload(notice)), headers


async def deliver_http(
    session: aiohttp.ClientSession, sink: NotifySink, notice: Notice, timeout: float
) -> None:
    url, body, headers = http_request(sink, notice)
    try:
        async with session.post(
            URL(url, encoded=True), data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            status = response.status
            answer = await response.read() if sink.kind != "webhook" and status < 300 else b""
    except TimeoutError:
        raise Retry("timed out") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise Retry(type(exc).__name__) from None
    if status == 429 or status >= 500:
        raise Retry(f"HTTP {status}")
    if status >= 300:
        raise GiveUp(f"HTTP {status}")
    if answer:  # the robots answer 200 with {"errcode": 0, "errmsg": "ok"}, or an errcode
        errcode = _errcode(answer)
        if errcode:
            raise Retry(f"errcode {errcode}")


def email_message(sink: NotifySink, notice: Notice) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sink.sender or sink.smtp_user or "deploybot@localhost"
    message["To"] = ", ".join(sink.to)
    message["Subject"] = email_subject(notice)
    message.set_content(notice.text + "\n")
    return message


async def deliver_email(sink: NotifySink, notice: Notice, timeout: float) -> None:
    implicit = sink.smtp_port == SMTPS_PORT
    try:
        await aiosmtplib.send(
            email_message(sink, notice),
            hostname=sink.smtp_host,
            port=sink.smtp_port,
            username=sink.smtp_user or None,
            password=(sink.smtp_password or None) if sink.smtp_user else None,
            use_tls=implicit,
            start_tls=False if implicit else sink.starttls,
            timeout=timeout,
        )
    except aiosmtplib.SMTPResponseException as exc:
        if 400 <= exc.code < 500:
            raise Retry(f"SMTP {exc.code}") from None
        raise GiveUp(f"SMTP {exc.code}") from None
    except TimeoutError:
        raise Retry("timed out") from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise Retry(type(exc).__name__) from None


def _json(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def _errcode(answer: bytes) -> int:
    try:
        data = json.loads(answer)
    except ValueError:
        return 0
    code = data.get("errcode", 0) if isinstance(data, dict) else 0
    return code if isinstance(code, int) else 0
