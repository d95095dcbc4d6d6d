"""GET /metrics end to end: a real deploy moves the counters, the histograms and the running gauge;
the metrics token is enforced and never echoed; Slack Web API calls are counted against the fake
Slack. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk.errors import SlackApiError

from tests.rest.test_rest import API, AUTH, ENVIRON, Api, serving

METRICS_TOKEN = "metrics-token-123"
Samples = dict[tuple[str, frozenset], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(api: Api, headers: dict | None = None) -> Samples:
    response = await api.client.get("/metrics", headers=headers or {})
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return parse(await response.text())


async def test_a_deploy_moves_counters_histograms_and_the_running_gauge(make_config):
    config = make_config(environ=ENVIRON)
    async with serving(config, base_env={"STEP_SLEEP": "0.15"}) as api:
        before = await scrape(api)
        assert value(before, "deploybot_deploys_current", environment="production", status="running") == 0
        assert value(before, "deploybot_deploys_current", environment="staging", status="queued") == 0
        assert value(before, "deploybot_metrics_database_up") == 1

        response, body = await api.post(f"{API}/trigger", json={"environment": "production"})
        assert response.status == 201, body
        async with asyncio.timeout(10):
            while True:
                during = await scrape(api)
                if value(during, "deploybot_deploys_current", environment="production", status="running"):
                    break
                await asyncio.sleep(0.05)
        assert value(during, "deploybot_deploys_current", environment="production", status="running") == 1
        finished = await api.wait_finished(body["id"])
        assert finished["status"] == "success"

        after = await scrape(api)
        total = "deploybot_deploys_total"
        assert value(before, total, environment="production", status="success") == 0
        assert value(after, total, environment="production", status="success") == 1
        count = "deploybot_deploy_duration_seconds_count"
        assert value(before, count, environment="production") == 0
        assert value(after, count, environment="production") == 1
        assert value(after, "deploybot_deploy_duration_seconds_sum", environment="production") >= 0.5
        assert value(after, "deploybot_log_bytes_total", environment="production") == finished["log_size"] > 0
        assert value(after, "deploybot_deploys_current", environment="production", status="running") == 0
        # request latency by route template: one series for every deploy's status, not one per id
        latency = "deploybot_http_request_duration_seconds_count"
        assert value(after, latency, route=f"{API}/status/{{deploy_id}}", method="GET") >= 1
        assert value(after, latency, route=f"{API}/trigger", method="POST") == 1
        assert value(after, latency, route="/metrics", method="GET") >= 2


async def test_the_token_is_enforced_and_never_echoed(make_config):
    config = make_config(environ=ENVIRON, bot={"metrics_token": METRICS_TOKEN})
    async with serving(config) as api:
        attempts = [
            {},
            {"Authorization": "Bearer wrong-token-456"},
            {"Authorization": f"Bearer {METRICS_TOKEN}x"},
            {"Authorization": f"Basic {METRICS_TOKEN}"},
            AUTH,  # a REST API token is not the metrics token
        ]
        for headers in attempts:
            response = await api.client.get("/metrics", headers=headers)
            text = await response.text()
            assert response.status == 401, headers
            assert "deploybot_" not in text and METRICS_TOKEN not in text
            assert METRICS_TOKEN not in str(response.headers)
        response = await api.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        text = await response.text()
        assert response.status == 200 and "deploybot_deploys_current" in text
        assert METRICS_TOKEN not in text and METRICS_TOKEN not in str(response.headers)


async def test_open_without_a_token(make_config):
    async with serving(make_config(environ=ENVIRON)) as api:
        response = await api.client.get("/no/such/page/12345")
        assert response.status == 404
        samples = await scrape(api)
        assert ("deploybot_metrics_database_up", frozenset()) in samples
        # an unknown path is one series, whatever it was
        latency = "deploybot_http_request_duration_seconds_count"
        assert value(samples, latency, route="unmatched", method="GET") == 1


async def test_slack_web_api_calls_by_method_and_outcome(start_bot):
    bot = await start_bot()
    url = f"http://127.0.0.1:{bot.server.port}/metrics"
    await bot.command("/deploy production main")
    await bot.finished()
    client = bot.server.slack.app.client
    bot.fake.fail("auth.test", error="invalid_auth")
    with pytest.raises(SlackApiError, match="invalid_auth"):
        await client.api_call("auth.test")
    bot.fake.fail("auth.test", 429, retry_after=0)
    await client.api_call("auth.test")  # retried after the 429, then ok
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        samples = parse(await response.text())
    calls = "deploybot_slack_api_calls_total"
    posted = len(bot.calls("chat.postMessage"))
    assert posted > 0  # the card and its thread, through the notifier's own client
    assert value(samples, calls, method="chat.postMessage", outcome="ok") == posted
    assert value(samples, calls, method="auth.test", outcome="error") == 1
    assert value(samples, calls, method="auth.test", outcome="ratelimited") == 1
    assert value(samples, calls, method="auth.test", outcome="ok") >= 1
    # the Slack endpoint's latency is measured too
    assert (
        value(samples, "deploybot_http_request_duration_seconds_count", route="/slack/events", method="POST")
        >= 1
    )


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_worker_with_a_port_answers_metrics_and_nothing_else(make_config):
    from bot.app.worker import start_worker

    config = make_config(
        environ={"SLACK_BOT_TOKEN": "xoxb-worker-metrics", "SLACK_API_URL": "http://127.0.0.1:9/api/"}
    )
    worker = await start_worker(config, port=0)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{worker.port}/metrics") as response:
                assert response.status == 200
                assert "deploybot_deploys_current" in await response.text()
            async with http.get(f"http://127.0.0.1:{worker.port}/api/v1/runners") as response:
                assert response.status == 404  # a worker serves no REST API
    finally:
        await worker.close()
