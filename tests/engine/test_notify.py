"""Notifications beyond Slack (DESIGN §10): real deploys on both databases, told to real receivers on
127.0.0.1: an aiohttp server playing a webhook, 企业微信 and 钉钉, and an aiosmtpd SMTP server (plain,
and STARTTLS with a login). Filters, retries, a refusal, a hanging sink, no secret in a log."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import email
import hashlib
import hmac
import json
import logging
import os
import subprocess
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult

from bot.app.runtime import start_runtime
from bot.config.model import NotifySink
from bot.deploy.events import DeployFinished
from bot.notify import Notifications, Timing
from bot.notify.messages import RECORD_FIELDS
from bot.notify.sinks import dingtalk_url
from handlers.schemas import DeployRecord
from storage.models import Status
from tests.conftest import ADMIN, SCRIPTS
from tests.engine.test_service import _service, wait_for_status

HOOK_SECRET = "hook-secret-0123"
DING_SECRET = "SECding-secret-4567"
WECOM_KEY = "wecom-key-89abcdef"
FAST = Timing(request_timeout=2.0, backoff=(0.05, 0.05), queue_size=100)


class Receiver:
    """An HTTP server that records every request and answers each path from its script of
    statuses (the last one repeats; "hang" never answers)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answers: dict[str, list] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._hung = asyncio.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(
            {
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        script = self.answers.get(request.path, [200])
        answer = script.pop(0) if len(script) > 1 else script[0]
        if answer == "hang":
            await self._hung.wait()
        if request.path in ("/wecom", "/ding") and answer == 200:
            return web.json_response({"errcode": 0, "errmsg": "ok"})
        return web.Response(status=answer, text="no")

    async def wait_for(self, count: int, path: str | None = None, timeout: float = 10) -> list[dict]:
        async with asyncio.timeout(timeout):
            while len(got := self.on(path) if path else self.requests) < count:
                await asyncio.sleep(0.02)
        return got

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)  # its log is not the bot's
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self._hung.set()
        await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as server:
        yield server


def with_sinks(config, *sinks: dict):
    return dataclasses.replace(config, notify=tuple(NotifySink(**sink) for sink in sinks))


@contextlib.asynccontextmanager
async def notified(config, timing: Timing = FAST):
    async with _service(config) as service:
        notifications = Notifications(config, timing)
        service.events.subscribe(notifications.observe)
        try:
            yield service, notifications
        finally:
            await notifications.close(0.5)


# --- each kind's format, wired by the runtime ------------------------------------------------------


async def test_webhook_wecom_and_dingtalk_get_their_formats_signed(make_config, receiver):
    config = with_sinks(
        make_config(bot={"locale": "en"}),
        {
            "kind": "webhook",
            "url": receiver.url("/hook"),
            "secret": HOOK_SECRET,
            "events": ["started", "success"],
        },
        {"kind": "wecom", "url": receiver.url(f"/wecom?key={WECOM_KEY}")},
        {"kind": "dingtalk", "url": receiver.url("/ding?access_token=tok123456"), "secret": DING_SECRET},
    )
    runtime = await start_runtime(config, base_env=dict(os.environ))
    try:
        assert runtime.notifications is not None  # subscribed by build_runtime: serve, worker, console, cli
        deploy = await runtime.service.trigger("staging", "main", user=ADMIN, description="release 1")
        done = await wait_for_status(runtime.service, deploy.id, Status.SUCCESS)
        hooks = await receiver.wait_for(2, "/hook")
        (wecom,) = await receiver.wait_for(1, "/wecom")
        (ding,) = await receiver.wait_for(1, "/ding")
    finally:
        await runtime.close()

    started, success = (json.loads(r["body"]) for r in hooks)
    assert [started["event"], success["event"]] == ["started", "success"]
    for request in hooks:
        expected = "sha256=" + hmac.new(HOOK_SECRET.encode(), request["body"], hashlib.sha256).hexdigest()
        assert request["headers"]["X-Deploybot-Signature"] == expected
        assert request["headers"]["Content-Type"].startswith("application/json")
    assert tuple(success["deploy"]) == RECORD_FIELDS
    assert success["deploy"] == json.loads(DeployRecord.of(done).model_dump_json())  # the REST record
    assert success["text"].startswith(f"预发布环境 deploy #{deploy.id} succeeded")
    assert "Description: release 1" in success["text"] and "Took: " in success["text"]

    assert wecom["query"] == {"key": WECOM_KEY}
    body = json.loads(wecom["body"])
    assert body["msgtype"] == "markdown" and set(body) == {"msgtype", "markdown"}
    assert body["markdown"]["content"].startswith(
        f"**预发布环境 deploy #{deploy.id} succeeded**\n> Branch: main"
    )

    query = ding["query"]
    assert query["access_token"] == "tok123456"
    assert abs(int(query["timestamp"]) - time.time() * 1000) < 30_000
    digest = hmac.new(DING_SECRET.encode(), f"{query['timestamp']}\n{DING_SECRET}".encode(), hashlib.sha256)
    assert query["sign"] == base64.b64encode(digest.digest()).decode()  # url-decoded by the server
    body = json.loads(ding["body"])
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == f"预发布环境 deploy #{deploy.id} succeeded"
    assert (
        body["markdown"]["text"].startswith("#### 预发布环境 deploy #")
        and "\n\n- By: U0ADMIN01" in body["markdown"]["text"]
    )


def test_the_dingtalk_sign_is_url_encoded():
    url = dingtalk_url("https://oapi.dingtalk.com/robot/send?access_token=t", "SECabc", now_ms=1700000000000)
    digest = hmac.new(b"SECabc", b"1700000000000\nSECabc", hashlib.sha256).digest()
    sign = base64.b64encode(digest).decode().replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    assert url == f"https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=1700000000000&sign={sign}"
    assert dingtalk_url("https://x.example/robot", "") == "https://x.example/robot"


def test_the_record_has_the_fields_of_the_rest_record():
    assert tuple(DeployRecord.model_fields) == RECORD_FIELDS


# --- filters -----------------------------------------------------------------------------------------


async def test_events_and_environments_filter_each_sink(make_config, receiver):
    config = with_sinks(
        make_config(
            environments={
                "production": {
                    "script": str(SCRIPTS / "fail.sh"),
                    "approval": "required",
                    "approvers": [ADMIN, "U0OTHER01"],
                },
                "staging": {"script": str(SCRIPTS / "steps.sh")},
            }
        ),
        {"kind": "webhook", "url": receiver.url("/default")},  # success and failed, everywhere
        {
            "kind": "webhook",
            "url": receiver.url("/prod-failed"),
            "events": ["failed"],
            "environments": ["production"],
        },
        {"kind": "webhook", "url": receiver.url("/waiting"), "events": ["awaiting_approval", "cancelled"]},
    )
    async with notified(config) as (service, notifications):
        ok = await service.trigger("staging", "main", user=ADMIN)
        await wait_for_status(service, ok.id, Status.SUCCESS)
        waiting = await service.trigger("production", "main", user=ADMIN)
        await service.cancel(waiting.id, user=ADMIN)
        failing = await service.trigger("production", "main", user=ADMIN)
        await service.approvals.approve(failing.id, user="U0OTHER01")
        await wait_for_status(service, failing.id, Status.FAILED)
        await receiver.wait_for(1, "/prod-failed")
        await notifications.flush()

    def seen(path):
        return [
            (json.loads(r["body"])["event"], json.loads(r["body"])["deploy"]["id"]) for r in receiver.on(path)
        ]

    assert seen("/default") == [("success", ok.id), ("failed", failing.id)]
    assert seen("/prod-failed") == [("failed", failing.id)]
    assert seen("/waiting") == [
        ("awaiting_approval", waiting.id), ("cancelled", waiting.id), ("awaiting_approval", failing.id)
    ]  # fmt: skip
    text = json.loads(receiver.on("/prod-failed")[0]["body"])["text"]  # the bot's locale: zh
    assert text.startswith(f"production 部署 #{failing.id} 失败") and "原因：" in text


# --- retries, refusals, a hanging sink; nothing secret in a log ---------------------------------------


async def test_a_500_is_retried_a_4xx_is_not_and_no_secret_is_logged(make_config, receiver, caplog):
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="bot")
    receiver.answers = {"/flaky": [500, 500, 200], "/gone": [404], "/down": [503]}
    config = with_sinks(
        make_config(),
        {"kind": "webhook", "url": receiver.url(f"/flaky?token={WECOM_KEY}"), "secret": HOOK_SECRET},
        {"kind": "webhook", "url": receiver.url(f"/gone?token={WECOM_KEY}")},
        {"kind": "wecom", "url": receiver.url(f"/down?key={WECOM_KEY}")},
    )
    async with notified(config) as (service, notifications):
        deploy = await service.trigger("staging", "main", user=ADMIN, description=f"key {HOOK_SECRET} leaked")
        done = await wait_for_status(service, deploy.id, Status.SUCCESS)
        service.events.emit(DeployFinished(done))  # an event told twice is sent once
        await receiver.wait_for(3, "/flaky")
        await notifications.flush()
        flaky, gone, down = notifications.workers
        assert (flaky.sent, flaky.failed) == (1, 0)
        assert (gone.sent, gone.failed, down.sent, down.failed) == (0, 1, 0, 1)

    bodies = [r["body"] for r in receiver.on("/flaky")]
    assert len(bodies) == 3 and len(set(bodies)) == 1  # the same notice, attempted three times
    assert len(receiver.on("/gone")) == 1 and len(receiver.on("/down")) == 3
    payload = json.loads(bodies[0])
    assert HOOK_SECRET not in bodies[0].decode() and "key *** leaked" in payload["text"]
    assert payload["deploy"]["description"] == "key *** leaked"
    assert "not sent after 3 attempts (HTTP 503)" in caplog.text and "refused (HTTP 404)" in caplog.text
    for secret in (WECOM_KEY, HOOK_SECRET, f"127.0.0.1:{receiver.port}"):
        assert secret not in caplog.text


async def test_a_hanging_or_failing_sink_never_slows_a_deploy(make_config, receiver):
    receiver.answers = {"/hang": ["hang"], "/fail": [500]}
    config = with_sinks(
        make_config(),
        {"kind": "webhook", "url": receiver.url("/hang"), "events": ["started", "success", "failed"]},
        {
            "kind": "dingtalk",
            "url": receiver.url("/fail"),
            "secret": DING_SECRET,
            "events": ["started", "success"],
        },
    )
    slow = Timing(request_timeout=30.0, backoff=(5.0, 5.0), queue_size=3)
    async with notified(config, slow) as (service, notifications):
        began = time.monotonic()
        deploy = await service.trigger("staging", "main", user=ADMIN)
        done = await wait_for_status(service, deploy.id, Status.SUCCESS)
        took = time.monotonic() - began
        await receiver.wait_for(1, "/hang")
        assert done.duration <= 1 and took < 5  # steps.sh takes well under a second
        hang, fail = notifications.workers
        assert hang.sent == 0 and fail.sent == 0  # both still trying, the deploy long done
        # a full queue drops, and the observer never waits
        began = time.monotonic()
        for _ in range(50):
            notifications._seen.clear()
            notifications.observe(DeployFinished(done))
        assert time.monotonic() - began < 0.5
        assert hang.queue.qsize() == 3 and hang.failed >= 46
        again = await service.trigger("staging", "main", user=ADMIN)
        await wait_for_status(service, again.id, Status.SUCCESS, timeout=5)
        closing = time.monotonic()
    assert time.monotonic() - closing < 3  # close gives up on the hanging sink after its timeout


# --- email ---------------------------------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@contextlib.asynccontextmanager
async def smtp_server(**options) -> AsyncIterator[tuple[Inbox, int]]:
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(inbox, hostname="127.0.0.1", **options), "127.0.0.1", 0)
    try:
        yield inbox, server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def wait_for_mail(inbox: Inbox, count: int = 1) -> list:
    async with asyncio.timeout(10):
        while len(inbox.messages) < count:
            await asyncio.sleep(0.02)
    return inbox.messages


async def test_email_over_plain_smtp_in_the_bots_locale(make_config):
    async with smtp_server() as (inbox, port):
        config = with_sinks(
            make_config(environments={"staging": {"script": str(SCRIPTS / "fail.sh")}}),
            {"kind": "email", "to": ["ops@example.com", "dev@example.com"], "sender": "bot@example.com",
             "smtp_host": "127.0.0.1", "smtp_port": port, "starttls": False},
        )  # fmt: skip
        async with notified(config) as (service, _):
            deploy = await service.trigger("staging", "main", user=ADMIN)
            await wait_for_status(service, deploy.id, Status.FAILED)
            ((sender, to, content),) = await wait_for_mail(inbox)
    assert sender == "bot@example.com" and to == ["ops@example.com", "dev@example.com"]
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert message["Subject"] == f"[deploybot] staging 部署 #{deploy.id} 失败"
    body = message.get_content()
    assert "发起人：U0ADMIN01" in body and "原因：" in body


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_email_with_starttls_and_a_login(make_config, certificate, monkeypatch):
    import ssl

    cert, key = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts the test's own certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password, session.ssl is not None))
        return AuthResult(success=auth_data.password == b"smtp-password-1")

    tls = {"tls_context": context, "require_starttls": True, "authenticator": authenticator}
    async with smtp_server(**tls) as (inbox, port):
        config = with_sinks(
            make_config(),
            {"kind": "email", "to": ["ops@example.com"], "smtp_host": "127.0.0.1", "smtp_port": port,
             "smtp_user": "bot@example.com", "smtp_password": "smtp-password-1"},
        )  # fmt: skip
        async with notified(config) as (service, _):
            deploy = await service.trigger("staging", "main", user=ADMIN)
            await wait_for_status(service, deploy.id, Status.SUCCESS)
            ((sender, to, content),) = await wait_for_mail(inbox)
    assert logins == [(b"bot@example.com", b"smtp-password-1", True)]  # logged in over TLS only
    assert sender == "bot@example.com" and to == ["ops@example.com"]
    assert b"smtp-password-1" not in content
