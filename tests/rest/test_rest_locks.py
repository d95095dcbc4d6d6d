"""`/api/v1/locks` (DESIGN §9) over real HTTP to the app `deploybot serve` runs, on SQLite and
PostgreSQL: list, lock and extend, unlock, who is refused with which status, and bad input that
changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from handlers import openapi, schemas
from storage.models import AuditEvent, EnvironmentLock
from tests.rest.test_rest import AUTH, TOKEN, Api, iso_utc, serving

LOCKS = f"{schemas.API_PREFIX}/locks"
OPS_TOKEN = "secret-token-2"
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}
ENVIRON = {"DEPLOYBOT_API_TOKENS": f"ci:{TOKEN},ops:{OPS_TOKEN}"}


@pytest.fixture
async def api(make_config) -> AsyncIterator[Api]:
    """Two tokens; only `api:ci` is a manager."""
    async with serving(make_config(environ=ENVIRON, bot={"managers": ["api:ci"]})) as served:
        yield served


async def lock_rows(api: Api) -> list[EnvironmentLock]:
    async with api.service.db.session() as session:
        return list((await session.execute(select(EnvironmentLock))).scalars())


async def test_lock_extend_list_and_unlock(api) -> None:
    response, body = await api.get(LOCKS)
    assert response.status == 200 and body == {"locks": []}

    response, body = await api.call(
        "PUT", f"{LOCKS}/prod", json={"duration_minutes": 30, "reason": "release"}
    )
    assert response.status == 200, body
    assert body["environment"] == "production" and body["holder"] == "api:ci" and body["reason"] == "release"
    first = iso_utc(body["expires_at"])
    assert (first - iso_utc(body["locked_at"])).total_seconds() == pytest.approx(1800, abs=5)

    response, body = await api.call("PUT", f"{LOCKS}/production", json={"duration_minutes": 90})
    assert response.status == 200 and body["reason"] == "release"
    assert (iso_utc(body["expires_at"]) - first).total_seconds() == pytest.approx(3600, abs=5)

    _, body = await api.get(LOCKS)
    assert [(lock["environment"], lock["holder"]) for lock in body["locks"]] == [("production", "api:ci")]

    response, body = await api.call("DELETE", f"{LOCKS}/production")
    assert response.status == 200 and body["holder"] == "api:ci"
    assert await lock_rows(api) == []
    response, body = await api.call("DELETE", f"{LOCKS}/production")
    assert response.status == 404 and body["error"]["code"] == "not_locked"

    async with api.service.db.session() as session:
        actions = [
            e.action for e in (await session.execute(select(AuditEvent).order_by(AuditEvent.id))).scalars()
        ]
    assert actions == ["lock", "extend", "unlock"]


async def test_someone_elses_lock(api) -> None:
    response, _ = await api.call("PUT", f"{LOCKS}/staging", headers=OPS, json={"reason": "load test"})
    assert response.status == 200
    [row] = await lock_rows(api)
    assert (row.holder, (row.expires_at - row.locked_at).total_seconds()) == ("api:ops", 7200)

    response, body = await api.call("PUT", f"{LOCKS}/staging", json={"duration_minutes": 5})
    assert response.status == 409 and body["error"]["code"] == "environment_locked"
    assert "api:ops" in body["error"]["message"] and "load test" in body["error"]["message"]
    response, body = await api.post(
        f"{schemas.API_PREFIX}/deploy/trigger", json={"environment": "staging", "branch": "main"}
    )
    assert response.status == 409 and body["error"]["code"] == "environment_locked"
    assert await api.rows() == 0

    await api.call("DELETE", f"{LOCKS}/staging", headers=OPS)
    await api.call("PUT", f"{LOCKS}/staging", json={})  # now api:ci holds it
    response, body = await api.call("DELETE", f"{LOCKS}/staging", headers=OPS)
    assert response.status == 403 and body["error"]["code"] == "locked_by_other"
    response, body = await api.call("DELETE", f"{LOCKS}/staging", headers=AUTH)
    assert response.status == 200
    response, _ = await api.call("PUT", f"{LOCKS}/staging", headers=OPS, json={})
    response, body = await api.call("DELETE", f"{LOCKS}/staging")  # a manager unlocks anyone's
    assert response.status == 200 and body["holder"] == "api:ops"


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("production", {"duration_minutes": 0}, "invalid_input"),
        ("production", {"duration_minutes": 10081}, "invalid_input"),
        ("production", {"duration_minutes": "30"}, "invalid_input"),
        ("production", {"duration_minutes": 30.5}, "invalid_input"),
        ("production", {"reason": "x" * 501}, "invalid_input"),
        ("production", {"reason": "nul\u0000"}, "invalid_input"),
        ("production", {"until": "tomorrow"}, "invalid_input"),
        ("production", [], "invalid_input"),
        ("nowhere", {}, "unknown_environment"),
    ],
)
async def test_bad_input_changes_nothing(api, path, body, code) -> None:
    response, answer = await api.call("PUT", f"{LOCKS}/{path}", json=body)
    assert response.status == 400 and answer["error"]["code"] == code, answer
    assert await lock_rows(api) == []


async def test_locks_need_a_token_and_are_in_the_document(api) -> None:
    response, body = await api.get(LOCKS, auth=False)
    assert response.status == 401
    response, _ = await api.call("PUT", f"{LOCKS}/production", auth=False, json={})
    assert response.status == 401 and await lock_rows(api) == []
    paths = openapi.build_document()["paths"]
    assert set(paths[LOCKS]) == {"get"} and set(paths[f"{LOCKS}/{{environment}}"]) == {"put", "delete"}
    assert "403" in paths[f"{LOCKS}/{{environment}}"]["delete"]["responses"]
