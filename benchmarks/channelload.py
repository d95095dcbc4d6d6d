"""P14: thirty deploys at once (thirty environments) into one channel, with the local Slack
enforcing Slack's rate limits (bot/console/ratelimits.py). Measures whether any deploy failed or
slowed (against the same deploy run alone first), how long after its deploy's end each card showed
the final state, and how many Web API calls Slack answered 429.

The deploys are started through the REST API with `notify_channel` set, so every card goes to the
one channel. Which call wrote which card is read from the Block Kit the bot sent: a card carries the
block `deploy_<id>_summary`, and it is final once it has no 取消 button.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from benchmarks.context import Bench
from benchmarks.report import Result
from benchmarks.workspace import CHANNEL, script
from bot.console.ratelimits import SLACK_LIMITS
from bot.console.workspace import ApiCall, LocalSlack

DEPLOYS = 30
STEP_SECONDS = 5.0  # 7 steps: a 35 s deploy, longer than posting thirty cards at one a second
CARD_LAG_TARGET = 10.0
LIMITED_TARGET = 5.0  # % of Web API calls answered 429
SLOWDOWN_TARGET = 1.05
SETTLE_TIMEOUT = 180.0
CARD_BLOCK = re.compile(r"deploy_(\d+)_summary")


def environments() -> dict[str, dict]:
    args = ["0", str(STEP_SECONDS)]
    return {f"env{n:02d}": {"script": script("steps.py"), "args": args} for n in range(DEPLOYS)}


@dataclass
class Seen:
    """What the channel showed of the deploys, read from the calls the bot made."""

    card_final_at: dict[int, float]  # deploy id -> when its card first showed the end
    final_replies: dict[int, int]  # deploy id -> final replies in its thread
    final_reply_at: dict[int, float]  # deploy id -> when its final reply was posted
    web_api: int
    limited: int
    methods: Counter


def card_of(call: ApiCall) -> tuple[int, bool] | None:
    """(deploy id, final?) when `call` wrote a card (posted it or updated it) and Slack took it."""
    if not call.ok or call.method not in ("chat.postMessage", "chat.update"):
        return None
    if call.method == "chat.postMessage" and call.params.get("thread_ts"):
        return None
    blocks = call.params.get("blocks") or []
    ids = [m.group(1) for b in blocks if (m := CARD_BLOCK.fullmatch(str(b.get("block_id", ""))))]
    if not ids:
        return None
    buttons = {e.get("action_id") for b in blocks for e in b.get("elements") or [] if isinstance(e, dict)}
    return int(ids[0]), "cancel_deploy" not in buttons


def is_final_reply(call: ApiCall) -> bool:
    if not (call.ok and call.method == "chat.postMessage" and call.params.get("thread_ts")):
        return False
    return any(b.get("block_id") == "final_summary" for b in call.params.get("blocks") or [])


def read_channel(calls: list[ApiCall]) -> Seen:
    card_final_at: dict[int, float] = {}
    deploy_of_ts: dict[str, int] = {}
    final_replies: Counter = Counter()
    final_reply_at: dict[int, float] = {}
    for call in calls:
        card = card_of(call)
        if card is not None:
            deploy_id, final = card
            ts = call.params.get("ts") or (call.response or {}).get("ts")
            deploy_of_ts[str(ts)] = deploy_id
            if final:
                card_final_at.setdefault(deploy_id, call.time)
        elif is_final_reply(call):
            deploy_id = deploy_of_ts.get(str(call.params["thread_ts"]), -1)
            final_replies[deploy_id] += 1
            final_reply_at.setdefault(deploy_id, call.time)
    web_api = [c for c in calls if c.method not in ("response_url", "file_upload")]
    return Seen(
        card_final_at=card_final_at,
        final_replies=dict(final_replies),
        final_reply_at=final_reply_at,
        web_api=len(web_api),
        limited=sum(1 for c in web_api if c.status == 429),
        methods=Counter(c.method for c in web_api if c.status != 429),
    )


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def run_seconds(record: dict) -> float:
    return epoch(record["completed_at"]) - epoch(record["started_at"])


async def wait_for_channel(slack: LocalSlack, first: int, ids: list[int]) -> Seen:
    """Until every deploy's card is final and its final reply is in (or the timeout)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        seen = read_channel(slack.calls[first:])
        done = all(i in seen.card_final_at and seen.final_replies.get(i) for i in ids)
        if done or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.5)


async def p14_busy_channel(bench: Bench) -> list[Result]:
    settings = {"notify_channel": CHANNEL}
    async with (
        LocalSlack(rate_limits=SLACK_LIMITS) as slack,
        bench.bot("sqlite", environments(), bot=settings, slack=slack) as bot,
    ):
        alone = await bot.wait_finished((await bot.trigger("env00"))["id"])
        await wait_for_channel(slack, 0, [alone["id"]])
        first = len(slack.calls)
        started = await asyncio.gather(*(bot.trigger(env) for env in environments()))
        ids = [d["id"] for d in started]
        records = await asyncio.gather(*(bot.wait_finished(i, poll=0.25) for i in ids))
        seen = await wait_for_channel(slack, first, ids)

    failed = [r["id"] for r in records if r["status"] != "success"]
    slowdown = max(run_seconds(r) for r in records) / run_seconds(alone)
    lags = {
        r["id"]: seen.card_final_at.get(r["id"], float("inf")) - epoch(r["completed_at"]) for r in records
    }
    worst = max(lags.values())
    reply_lag = max(
        seen.final_reply_at.get(r["id"], float("inf")) - epoch(r["completed_at"]) for r in records
    )
    missing = [i for i in ids if not seen.final_replies.get(i)]
    share = 100 * seen.limited / max(1, seen.web_api)
    methods = ", ".join(f"{m} {n}" for m, n in sorted(seen.methods.items()))
    bench.say(f"P14: {DEPLOYS} deploys of {7 * STEP_SECONDS:.0f} s into one channel: {len(failed)} failed, "
              f"slowest {slowdown:.3f}× the same deploy alone ({run_seconds(alone):.1f} s); card final after the "
              f"deploy's end: worst {worst:.2f} s, median {sorted(lags.values())[len(lags) // 2]:.2f} s; "
              f"final reply: worst {reply_lag:.1f} s, missing: {len(missing)}; {seen.web_api} Web API calls ({methods}), "
              f"{seen.limited} answered 429 ({share:.1f} %)")  # fmt: skip
    what = f"{DEPLOYS} deploys at once into one channel, Slack's rate limits enforced"
    return [
        Result("P14", f"slowest deploy ÷ the same deploy alone, {what} ({len(failed)} failed)",
               round(slowdown, 3), "×", f"≤ {SLOWDOWN_TARGET}, none failed",
               slowdown <= SLOWDOWN_TARGET and not failed),
        Result("P14", f"deploy end → its card shows the final state, worst of {DEPLOYS} ({what}; "
               f"{DEPLOYS - len(missing)}/{DEPLOYS} final replies with their mention)",
               round(worst, 2), "s", f"≤ {CARD_LAG_TARGET:g} s", worst <= CARD_LAG_TARGET and not missing),
        Result("P14", f"deploy end → its final reply (one post a second in the channel), worst of {DEPLOYS}",
               round(reply_lag, 1), "s", "—", None),
        Result("P14", f"Web API calls answered 429 ({seen.limited} of {seen.web_api} calls: {methods})",
               round(share, 1), "%", f"< {LIMITED_TARGET:g} %", share < LIMITED_TARGET),
    ]  # fmt: skip
