"""The live log stream (Server-Sent Events) end to end: real HTTP to the app `deploybot serve` runs,
real scripts, SQLite and PostgreSQL. The stream, decoded as the OpenAPI description says, is the
stored log byte for byte; ids are whole-character end offsets; Last-Event-ID resumes; an `end`
event carries the final status; secrets arrive masked; a client that leaves ends the handler."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field

import pytest

from bot.deploy.logfollow import FOLLOWED_TRICKLE_SECONDS, FOLLOWERS
from handlers import rest_stream
from handlers.rest_stream import event
from tests.conftest import SCRIPTS
from tests.rest.test_rest import API, ENVIRON, serving

STREAM_SECRET = "stream-secret-value-77"
UNESCAPE = re.compile(r"\\(\\|r)")
LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass
class Event:
    name: str = "message"
    id: str | None = None
    data: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The log text, undoing the stream's escapes (see the operation's description)."""
        return UNESCAPE.sub(lambda m: "\r" if m.group(1) == "r" else "\\", "\n".join(self.data))


def parse(body: str) -> tuple[list[Event], int]:
    """Events per the SSE rules (any line end; comments skipped), and how many comments came."""
    events, current, comments = [], Event(), 0
    for line in LINE_END.split(body):
        if not line:
            if current.data or current.id is not None:
                events.append(current)
            current = Event()
        elif line.startswith(":"):
            comments += 1
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                current.data.append(value)
            elif name == "id":
                current.id = value
            elif name == "event":
                current.name = value
    return events, comments


async def stream(api, deploy_id: int, headers: dict | None = None) -> tuple[list[Event], int]:
    async with asyncio.timeout(20):
        response, body = await api.get(f"{API}/logs/{deploy_id}/stream", headers=headers)
    assert response.status == 200 and response.content_type == "text/event-stream"
    return parse(body.decode("utf-8"))


@pytest.fixture
async def api(make_config):
    environments = {"production": {"script": str(SCRIPTS / "stream_progress.sh")}}
    # a second API token is one of the bot's secrets: the script printing it must show `***`
    tokens = {"DEPLOYBOT_API_TOKENS": f"{ENVIRON['DEPLOYBOT_API_TOKENS']},other:{STREAM_SECRET}"}
    config = make_config(environments=environments, environ=tokens)
    async with serving(config, base_env={"STREAM_SECRET": STREAM_SECRET, "PAUSE_SECONDS": "0.3"}) as served:
        yield served


async def deploy(api) -> int:
    response, body = await api.post(f"{API}/trigger", json={"environment": "production"})
    assert response.status == 201, body
    return body["id"]


async def stored_log(api, deploy_id: int) -> bytes:
    _, raw = await api.get(f"{API}/logs/{deploy_id}", params={"format": "raw"})
    return raw


async def test_a_running_deploy_streamed_is_its_stored_log_with_whole_character_ids(api):
    deploy_id = await deploy(api)
    events, _ = await stream(api, deploy_id)
    log_events, end = events[:-1], events[-1]
    stored = await stored_log(api, deploy_id)
    text = "".join(e.text for e in log_events)
    assert text.encode() == stored  # byte for byte, \r progress bars and CRLF included
    assert "\r" in text and "部署开始 🚀" in text and "back\\slash and a literal \\r" in text
    assert len(log_events) >= 3, "the running deploy came in one piece: nothing was followed"
    offset = 0
    for e in log_events:
        offset += len(e.text.encode())
        assert e.name == "message" and int(e.id) == offset
        stored[: int(e.id)].decode("utf-8")  # strict: an id never ends inside a character
    assert STREAM_SECRET not in text and STREAM_SECRET.encode() not in stored and "token=***" in text
    status = json.loads("\n".join(end.data))
    _, report = await api.get(f"{API}/status/{deploy_id}")
    assert (end.name, int(end.id)) == ("end", len(stored))
    assert status == report and status["status"] == "success" and status["finished"] is True


async def test_last_event_id_resumes_with_exactly_the_rest(api):
    deploy_id = await deploy(api)
    events, _ = await stream(api, deploy_id)
    stored = await stored_log(api, deploy_id)
    for e in events[:-1]:
        rest, _ = await stream(api, deploy_id, {"Last-Event-ID": e.id})
        assert "".join(r.text for r in rest[:-1]).encode() == stored[int(e.id) :]
        assert rest[-1].name == "end"
    rest, _ = await stream(api, deploy_id, {"Last-Event-ID": str(len(stored))})
    assert [r.name for r in rest] == ["end"]


async def test_refusals_are_json_errors(api):
    deploy_id = await deploy(api)
    path = f"{API}/logs/{deploy_id}/stream"
    response, body = await api.get(path, auth=False)
    assert response.status == 401 and body["error"]["code"] == "unauthorized"
    response, body = await api.get(f"{API}/logs/999999/stream")
    assert response.status == 404 and body["error"]["code"] == "deploy_not_found"
    for bad in ("abc", "-1", "1.5", "12345678901234567890", "9007199254740992"):
        response, body = await api.get(path, headers={"Last-Event-ID": bad})
        assert response.status == 400 and body["error"]["code"] == "invalid_input", bad
    await api.wait_finished(deploy_id)


async def test_keepalive_comments_while_quiet_and_a_client_leaving_ends_the_handler(make_config, monkeypatch):
    monkeypatch.setattr(rest_stream, "KEEPALIVE_SECONDS", 0.2)
    config = make_config(environments={"production": {"script": str(SCRIPTS / "sleepy.sh")}}, environ=ENVIRON)
    async with serving(config, base_env={"SLEEP_SECONDS": "30"}) as api:
        deploy_id = await deploy(api)
        response = await api.client.get(f"{API}/logs/{deploy_id}/stream", headers=ENVIRON_AUTH)
        async with asyncio.timeout(10):
            seen = b""
            while b": keepalive" not in seen or b"waiting" not in seen:
                seen += await response.content.read(256)
        assert FOLLOWERS.followed(deploy_id)
        assert FOLLOWERS.trickle_seconds(deploy_id, 0.25) == FOLLOWED_TRICKLE_SECONDS
        response.close()
        async with asyncio.timeout(2):
            while FOLLOWERS.followed(deploy_id):
                await asyncio.sleep(0.02)
        assert FOLLOWERS.trickle_seconds(deploy_id, 0.25) == 0.25
        await api.post(f"{API}/cancel/{deploy_id}")
        await api.wait_finished(deploy_id)


ENVIRON_AUTH = {"Authorization": f"Bearer {ENVIRON['DEPLOYBOT_API_TOKENS'].partition(':')[2]}"}


def test_an_event_escapes_carriage_returns_and_backslashes_only():
    assert event("a\rb\\c\nd 中\n", 9) == "id: 9\ndata: a\\rb\\\\c\ndata: d 中\ndata: \n\n".encode()
    parsed, _ = parse(event("x\r\n\\r\r", 3).decode())
    assert parsed[0].text == "x\r\n\\r\r"
