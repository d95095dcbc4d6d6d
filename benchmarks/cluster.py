"""Several bot processes on one PostgreSQL (DESIGN §12): P10 (the owner of a deploy is killed with
SIGKILL and another process ends its deploy), P11 (a cancel sent to one process stops the script that
another one runs) and P12 (100 triggers at once over three processes: how fast each is answered, and
that each environment still gets exactly one deploy).

Every process is a real `deploybot serve` or `deploybot worker` child with the default lease settings
(lease 10 s, heartbeat 2 s, reaper every 2 s); the script is benchmarks/scripts/hold.sh, which leaves
its process group id in a file so that the harness can watch the group itself."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from sqlalchemy.engine import make_url

from benchmarks.botprocess import SIGNING_SECRET, BotProcess
from benchmarks.context import Bench
from benchmarks.report import Result, percentile
from benchmarks.workspace import ADMIN_USER, CHANNEL, script
from bot.console.driver import SlackDriver

P10_RUNS = 5
P10_TIMEOUT = 60.0  # seconds to wait for the survivor to end the deploy before calling it lost
P11_WARMUP = 2
P11_SAMPLES = 20
P12_TRIGGERS = 100
P12_ROUNDS = 3
P12_ENVIRONMENTS = ("production", "staging", "test", "dev")
P12_HOLD_SECONDS = 6  # long enough that every trigger of the burst finds its environment busy
GROUP_TIMEOUT = 30.0
POLL = 0.002  # seconds between two looks at a process group


class Processes:
    """Bot processes sharing one new PostgreSQL database and one config, whose environments all run
    hold.sh for the given seconds; each process logs to its own file. On exit every process still
    running is stopped (SIGTERM), every script group left behind is killed and the database dropped."""

    def __init__(self, bench: Bench, name: str, hold: Mapping[str, float]) -> None:
        self.bench = bench
        self.name = name
        self.pgid_dir = bench.workspace.path(f"{name}-pgids")
        self.environments = {
            env: {"script": script("hold.sh"), "args": [str(self.pgid_dir), str(seconds)]}
            for env, seconds in hold.items()
        }
        self.processes: list[BotProcess] = []
        self.url = ""
        self.config = Path()
        self.db: asyncpg.Connection | None = None

    async def __aenter__(self) -> Processes:
        self.pgid_dir.mkdir(exist_ok=True)
        self.url = await self.bench.database("postgresql", self.name)
        self.config = self.bench.workspace.write_config(self.name, self.url, self.environments)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for process in self.processes:
            await process.stop()
        if self.db is not None:
            await self.db.close()
        self.kill_leftover_scripts()
        await self.bench.drop("postgresql", self.url)

    async def start(self, command: str = "serve", *args: str) -> BotProcess:
        """One more process. The first one migrates the new database, so they start one at a time."""
        label = f"{self.name}-{len(self.processes) + 1}-{command}"
        profile = self.bench.workspace.path(f"{label}.pyspy.txt") if self.bench.profile else None
        process = BotProcess(
            self.config, self.bench.slack.api_url, self.bench.workspace.path(f"{label}.log"),
            profile=profile, command=command, args=args,
        )  # fmt: skip
        self.processes.append(process)
        await process.start()
        return process

    async def query(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        if self.db is None:
            parsed = make_url(self.url)
            self.db = await asyncpg.connect(
                host=parsed.host, port=parsed.port, user=parsed.username, password=parsed.password,
                database=parsed.database,
            )  # fmt: skip
        return await self.db.fetch(sql, *params)

    async def owner_pid(self, deploy_id: int) -> int | None:
        """The pid in the deploy's runner_id (host/boot id/pid namespace/pid/start time/instance)."""
        rows = await self.query("SELECT runner_id FROM deploy_history WHERE id = $1", deploy_id)
        return _runner_pid(rows[0]["runner_id"]) if rows else None

    async def wait_runners(self, via: BotProcess, count: int, timeout: float = 60) -> None:
        """Until `via` lists `count` live processes (a worker serves no /healthz to wait on)."""
        assert via.http is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with via.http.get(f"{via.url}/api/v1/runners") as response:
                if response.status == 200 and len((await response.json())["runners"]) >= count:
                    return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"fewer than {count} runners listed after {timeout:.0f}s")

    async def pgid(self, deploy_id: int, timeout: float = 30) -> int:
        """The process group of the deploy's script, once the script has started."""
        path = self.pgid_dir / f"{deploy_id}.pgid"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                return int(path.read_text())
            await asyncio.sleep(POLL)
        raise TimeoutError(f"the script of deploy #{deploy_id} did not start within {timeout:.0f}s")

    def kill_leftover_scripts(self) -> None:
        """SIGKILL every hold.sh group that outlived its run, so nothing is left behind."""
        for path in self.pgid_dir.glob("*.pgid"):
            pgid = int(path.read_text())
            if group_alive(pgid) and _is_hold_script(pgid):
                os.killpg(pgid, signal.SIGKILL)


def _runner_pid(runner_id: str | None) -> int | None:
    parts = (runner_id or "").split("/")
    return int(parts[3]) if len(parts) == 6 and parts[3].isdigit() else None


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_hold_script(pid: int) -> bool:
    try:
        return b"hold.sh" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class ScriptGroup:
    """A script's process group, its members taken before it is stopped, watched until every member
    has exited and until the kernel lists none of them. The two differ by the reaping of members
    orphaned by the script's exit (its `sleep`): that is PID 1's job, not the bot's, and how soon PID 1
    does it depends on the machine (a container's init may do it only every second or two)."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.members = [pid for pid in _pids() if _stat(pid)[1] == pgid]

    def exited(self) -> bool:
        """No member runs any more (gone, or a zombie waiting to be reaped)."""
        return all(_stat(pid)[0] in ("", "Z", "X") for pid in self.members)

    async def watch(self, since: float, timeout: float = GROUP_TIMEOUT) -> tuple[float | None, float | None]:
        """Seconds from `since` (perf_counter) until every member exited, and until the group is empty
        (None: not within `timeout`)."""
        exited = empty = None
        deadline = since + timeout
        while time.perf_counter() < deadline:
            now = time.perf_counter() - since
            if not group_alive(self.pgid):
                return exited if exited is not None else now, now
            if exited is None and self.exited():
                exited = now
            await asyncio.sleep(POLL)
        return exited, empty


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _stat(pid: int) -> tuple[str, int]:
    """(state, process group) of a process; ("", 0) once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return "", 0
    return fields[0], int(fields[2])


async def left_running(
    bot: BotProcess, deploy_id: int, since: float, poll: float = 0.05
) -> tuple[float, dict]:
    """Seconds from `since` until `bot` reports the deploy as no longer running, and that status."""
    deadline = since + P10_TIMEOUT
    while time.perf_counter() < deadline:
        status = await bot.status(deploy_id)
        if status["status"] != "running":
            return time.perf_counter() - since, status
        await asyncio.sleep(poll)
    raise TimeoutError(f"deploy #{deploy_id} still running {P10_TIMEOUT:.0f}s after its owner was killed")


# --- P10 -------------------------------------------------------------------------------------------


async def p10_failover(bench: Bench) -> list[Result]:
    """Each run: a new owner starts a deploy and is killed with SIGKILL at a different point of its
    2 s heartbeat; the survivor's REST API is polled until the deploy has left `running`."""
    runs: list[dict] = []
    async with Processes(bench, "p10", {"production": 600}) as cluster:
        survivor = await cluster.start()
        for i in range(P10_RUNS):
            owner = await cluster.start()
            deploy_id = (await owner.trigger("production"))["id"]
            group = ScriptGroup(await cluster.pgid(deploy_id))
            assert await cluster.owner_pid(deploy_id) == owner.pid, "the process asked did not run it"
            await asyncio.sleep(1.0 + 2.0 * i / P10_RUNS)  # spread the kills over the heartbeat
            killed = time.perf_counter()
            os.kill(owner.pid, signal.SIGKILL)
            (ended, status), (exited, empty) = await asyncio.gather(
                left_running(survivor, deploy_id, killed), group.watch(killed)
            )
            assert owner.proc is not None
            await owner.proc.wait()
            runs.append({"ended": ended, "exited": exited, "empty": empty, "status": status})
            bench.say(f"P10 run {i + 1}: ended {status['status']} after {ended:.2f} s "
                      f"({status['error_message']!r}); orphaned script exited after {_seconds(exited)}, "
                      f"group empty after {_seconds(empty)}")  # fmt: skip
    return _p10_rows(bench, runs)


def _seconds(value: float | None) -> str:
    return f"more than {GROUP_TIMEOUT:.0f} s" if value is None else f"{value:.2f} s"


def _p10_rows(bench: Bench, runs: list[dict]) -> list[Result]:
    ended = [run["ended"] for run in runs]
    interrupted = sum(
        run["status"]["status"] == "failed" and "interrupted" in (run["status"]["error_message"] or "")
        for run in runs
    )
    exited = [run["exited"] for run in runs if run["exited"] is not None]
    worst, median = max(ended), statistics.median(ended)
    bench.say(f"P10: ended after worst {worst:.2f} s, median {median:.2f} s "
              f"({', '.join(f'{s:.2f}' for s in ended)}); {interrupted}/{len(runs)} interrupted")  # fmt: skip
    met = worst <= 15 and interrupted == len(runs)
    what = (
        f"{len(runs)} runs, lease 10 s, heartbeat 2 s; {interrupted}/{len(runs)} ended failed “interrupted”"
    )
    note = "" if met else f"Missed: worst {worst:.1f} s; {len(runs) - interrupted} run(s) not interrupted."
    stopped = "" if len(exited) == len(runs) else (
        f"{len(runs) - len(exited)} of {len(runs)} orphaned scripts still ran {GROUP_TIMEOUT:.0f} s after "
        "their owner was killed."
    )  # fmt: skip
    return [
        Result("P10", f"owner killed (SIGKILL) → its deploy ended by another process, worst ({what})",
               round(worst, 2), "s", "≤ 15 s", met, note),
        Result("P10", "owner killed → its deploy ended by another process, median", round(median, 2), "s", "—", None),
        Result("P10", f"owner killed → the script it left running stopped by another process, worst "
               f"({len(exited)}/{len(runs)} stopped)", round(max(exited), 2) if exited else None, "s", "—",
               None, stopped),
    ]  # fmt: skip


# --- P11 -------------------------------------------------------------------------------------------


async def p11_cross_cancel(bench: Bench) -> list[Result]:
    """A runs the deploy, the cancel goes to B's REST API; the clock stops when every process of the
    script's group has exited. hold.sh exits on SIGTERM, so the grace period plays no part."""
    exited: list[float] = []
    empty: list[float] = []
    answers: list[float] = []
    statuses: Counter = Counter()
    async with Processes(bench, "p11", {"production": 600}) as cluster:
        owner = await cluster.start()
        other = await cluster.start()
        for i in range(P11_WARMUP + P11_SAMPLES):
            deploy_id = (await owner.trigger("production"))["id"]
            pgid = await cluster.pgid(deploy_id)
            assert await cluster.owner_pid(deploy_id) == owner.pid, "the process asked did not run it"
            await asyncio.sleep(0.2)  # its `sleep` started
            group = ScriptGroup(pgid)
            sent = time.perf_counter()
            code, answer = await other.api("POST", f"cancel/{deploy_id}")
            answered = time.perf_counter() - sent
            assert code == 202, f"cancel #{deploy_id}: {code} {answer}"
            stopped, emptied = await group.watch(sent)
            record = await other.wait_finished(deploy_id, timeout=60)
            if i < P11_WARMUP:
                continue
            statuses[record["status"]] += 1
            answers.append(answered)
            exited += [stopped] if stopped is not None else []
            empty += [emptied] if emptied is not None else []
    return _p11_rows(bench, exited, empty, answers, statuses)


def _p11_rows(
    bench: Bench, exited: list[float], empty: list[float], answers: list[float], statuses: Counter
) -> list[Result]:
    samples = P11_SAMPLES
    states = ", ".join(f"{n} {status}" for status, n in statuses.most_common())
    p95, empty_p95 = percentile(exited, 95), percentile(empty, 95)
    bench.say(f"P11: every process of the group exited: p50 {percentile(exited, 50):.3f} s, p95 {p95:.3f} s, "
              f"max {max(exited):.3f} s ({len(exited)}/{samples}); group empty (orphans reaped by PID 1): "
              f"p50 {percentile(empty, 50):.3f} s, p95 {empty_p95:.3f} s, max {max(empty):.3f} s; cancel "
              f"answered p50 {percentile(answers, 50) * 1000:.1f} ms; {states}")  # fmt: skip
    met = len(exited) == samples and statuses["cancelled"] == samples and p95 <= 1.5
    note = "" if met else (
        f"Missed: p95 {p95:.2f} s; {samples - len(exited)} group(s) still running after {GROUP_TIMEOUT:.0f} s; "
        f"{states}."
    )  # fmt: skip
    empty_note = (
        "The script's `sleep`, orphaned when the shell exits, stays a zombie until PID 1 reaps it; on the "
        "machine measured PID 1 does so only every second or two, so kill(-pgid, 0) keeps succeeding "
        "after every process of the group has exited."
    )
    return [
        Result("P11", f"cancel sent to process B → every process of the script's group (run by A) exited, "
               f"p95 ({samples} deploys; {states})", round(p95, 3), "s", "≤ 1.5 s", met, note),
        Result("P11", "cancel sent to B → script group exited, p50", round(percentile(exited, 50), 3), "s", "—",
               None),
        Result("P11", "cancel sent to B → the kernel lists no process in the group (zombies reaped), p95",
               round(empty_p95, 3), "s", "—", None, empty_note),
        Result("P11", "cancel request answered by B (202), p50", round(percentile(answers, 50) * 1000, 1),
               "ms", "—", None),
    ]  # fmt: skip


# --- P12 -------------------------------------------------------------------------------------------

Trigger = Callable[[], Awaitable[tuple[float, str]]]
Deploys = dict[str, list[tuple[str, str]]]  # environment: (status, run by) of each deploy


async def p12_concurrent_triggers(bench: Bench) -> list[Result]:
    """serve A (runs scripts), serve B (--no-runner) and a worker C. Each round, 100 triggers over
    the 4 environments go out at once, a quarter each as slash commands and REST calls to A and to B;
    a first round of the same shape, all for one more environment, warms the connections up."""
    hold = {**dict.fromkeys(P12_ENVIRONMENTS, P12_HOLD_SECONDS), "warmup": 2}
    answers: list[tuple[float, str]] = []
    rounds: list[tuple[Deploys, Deploys]] = []
    cpu = Counter()  # CPU seconds each process spent while the bursts were answered
    async with Processes(bench, "p12", hold) as cluster:
        a = await cluster.start()
        b = await cluster.start("serve", "--no-runner")
        c = await cluster.start("worker")
        await cluster.wait_runners(a, 3)
        roles = {a.pid: "serve A", b.pid: "serve B", c.pid: "worker C"}
        drivers = [SlackDriver(bot.slack_url, bench.slack, secret=SIGNING_SECRET) for bot in (a, b)]
        kinds = [("slack", a, drivers[0]), ("slack", b, drivers[1]), ("rest", a, None), ("rest", b, None)]
        try:
            await _burst(kinds, ["warmup"])
            await _until_idle(cluster, 30)
            for _ in range(P12_ROUNDS):
                first = await cluster.query("SELECT coalesce(max(id), 0) AS id FROM deploy_history")
                before = {role: bot.cpu_seconds() for role, bot in (("A", a), ("B", b), ("C", c))}
                answers += await _burst(kinds, P12_ENVIRONMENTS)
                cpu.update(
                    {role: bot.cpu_seconds() - before[role] for role, bot in (("A", a), ("B", b), ("C", c))}
                )
                await asyncio.sleep(2.0)  # a slash command triggers after its ack
                claimed = await _deploys(cluster, roles, first[0]["id"])
                await _until_idle(cluster, P12_HOLD_SECONDS * 4)
                rounds.append((claimed, await _deploys(cluster, roles, first[0]["id"])))
        finally:
            for driver in drivers:
                await driver.close()
    return _p12_rows(bench, answers, rounds, cpu)


async def _burst(kinds: list, environments: Sequence[str]) -> list[tuple[float, str]]:
    """P12_TRIGGERS triggers at once: the kind changes with each trigger, the environment every
    fourth, so that every environment gets every kind."""
    triggers = [
        _trigger(*kinds[i % len(kinds)], environments[(i // len(kinds)) % len(environments)])
        for i in range(P12_TRIGGERS)
    ]
    return await asyncio.gather(*(trigger() for trigger in triggers))


def _trigger(kind: str, bot: BotProcess, driver: SlackDriver | None, env: str) -> Trigger:
    """One trigger, its request prepared ahead so only the answer is timed: (seconds, outcome)."""
    if kind == "slack":
        assert driver is not None
        body = driver.command_body(f"{env} main", user=ADMIN_USER, channel=CHANNEL)

        async def slash() -> tuple[float, str]:
            started = time.perf_counter()
            reply = await driver.post(body)
            return time.perf_counter() - started, f"slack {reply.status}"

        return slash

    async def rest() -> tuple[float, str]:
        started = time.perf_counter()
        try:
            code, _ = await bot.api("POST", "trigger", json={"environment": env})
        except aiohttp.ClientError as exc:
            return time.perf_counter() - started, f"rest {type(exc).__name__}"
        return time.perf_counter() - started, f"rest {code}"

    return rest


async def _until_idle(cluster: Processes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = await cluster.query(
            "SELECT count(*) AS n FROM deploy_history WHERE status IN ('pending', 'running')"
        )
        if rows[0]["n"] == 0:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"deploys still pending or running after {timeout:.0f}s")


async def _deploys(cluster: Processes, roles: dict[int, str], after_id: int) -> Deploys:
    """The deploys of the burst's environments created after `after_id`."""
    rows = await cluster.query(
        "SELECT environment, status, runner_id FROM deploy_history WHERE environment = ANY($1) AND id > $2 "
        "ORDER BY id",
        list(P12_ENVIRONMENTS),
        after_id,
    )
    found: Deploys = {env: [] for env in P12_ENVIRONMENTS}
    for row in rows:
        pid = _runner_pid(row["runner_id"])
        found[row["environment"]].append(
            (row["status"], "nobody" if pid is None else roles.get(pid, "another"))
        )
    return found


def _p12_rows(
    bench: Bench, answers: list[tuple[float, str]], rounds: list[tuple[Deploys, Deploys]], cpu: Counter
) -> list[Result]:
    return _p12_answer_rows(bench, answers, cpu, len(rounds)) + _p12_deploy_rows(bench, rounds)


def _p12_answer_rows(
    bench: Bench, answers: list[tuple[float, str]], cpu: Counter, rounds: int
) -> list[Result]:
    times = [seconds for seconds, _ in answers]
    outcomes = Counter(outcome for _, outcome in answers)
    errors = {o: n for o, n in outcomes.items() if o not in ("slack 200", "rest 201", "rest 409")}
    p99 = percentile(times, 99) * 1000
    by_kind = {kind: [s for s, o in answers if o.startswith(kind)] for kind in ("slack", "rest")}
    kind_text = {kind: f"p50 {percentile(t, 50) * 1000:.1f} ms, p99 {percentile(t, 99) * 1000:.1f} ms"
                 for kind, t in by_kind.items()}  # fmt: skip
    each = len(times) / 2  # triggers each serve process answered
    cpu_text = (f"serve A used {cpu['A'] / each * 1000:.1f} ms and serve B {cpu['B'] / each * 1000:.1f} ms of "
                f"CPU a trigger while the bursts were answered, on {os.cpu_count()} cores, load average "
                f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    bench.say(f"P12: {len(times)} answers over {rounds} rounds: p50 {percentile(times, 50) * 1000:.1f} ms, "
              f"p99 {p99:.1f} ms, max {max(times) * 1000:.1f} ms; slash commands {kind_text['slack']}; REST "
              f"{kind_text['rest']}; {dict(outcomes)}; {cpu_text}")  # fmt: skip
    met = p99 <= 100 and not errors
    note = "" if met else (
        f"Missed: p99 {p99:.1f} ms (slash command acks {kind_text['slack']}; REST answers {kind_text['rest']}); "
        f"{cpu_text}" + (f"; errors {errors}" if errors else "") + "."
    )  # fmt: skip
    what = (f"{rounds} rounds of {P12_TRIGGERS} at once, a quarter each slash commands and REST to serve A and "
            "to serve B (--no-runner), worker C")  # fmt: skip
    return [
        Result("P12", f"trigger answered (HTTP), p99 ({what})", round(p99, 1), "ms", "≤ 100 ms", met, note),
        Result("P12", "slash command ack, p99", round(percentile(by_kind["slack"], 99) * 1000, 1), "ms", "—", None),
        Result("P12", f"REST trigger answered (201 or 409 busy), p99 ({outcomes['rest 201']} × 201, "
               f"{outcomes['rest 409']} × 409)", round(percentile(by_kind["rest"], 99) * 1000, 1), "ms", "—", None),
    ]  # fmt: skip


def _p12_deploy_rows(bench: Bench, rounds: list[tuple[Deploys, Deploys]]) -> list[Result]:
    final = [deploys for _, found in rounds for deploys in found.values()]
    counts = Counter(len(deploys) for deploys in final)
    unclaimed = sum(status == "pending" for claimed, _ in rounds for d in claimed.values() for status, _ in d)
    ended = Counter(status for deploys in final for status, _ in deploys)
    owners = Counter(owner for deploys in final for _, owner in deploys)
    bench.say(f"P12: deploys per environment and round {dict(counts)}; run by {dict(owners)}; {unclaimed} "
              f"still pending 2 s after a burst; ended {dict(ended)}")  # fmt: skip
    expected = len(final)
    met = counts == Counter({1: expected}) and unclaimed == 0 and ended == Counter(success=expected)
    note = "" if met else (
        f"Missed: deploys per environment and round {dict(counts)}; {unclaimed} unclaimed 2 s after a burst; "
        f"ended {dict(ended)}."
    )  # fmt: skip
    run_by = ", ".join(f"{n} by {owner}" for owner, n in sorted(owners.items()))
    return [
        Result("P12", f"environments with exactly one deploy from the burst ({expected} = {len(rounds)} rounds × "
               f"{len(P12_ENVIRONMENTS)}; run {run_by})", counts[1], "", f"{expected} of {expected}", met, note),
    ]  # fmt: skip
