"""Gates (DESIGN §9) on a real database (SQLite and PostgreSQL) with a real script that reads its
answer from $DEPLOY_GATE_FD: continue, abort, timeout, the deploy's timeout standing still, double
answers, answers from another process, permissions, cancel while waiting."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from bot import errors
from bot.deploy.events import DeployFinished, GateAnswered, GateAsked, StepChanged
from bot.deploy.progress import GateReached, OutputScanner
from bot.deploy.service import DeployService
from storage.models import AuditEvent, Deploy, Status
from tests.conftest import ADMIN, SCRIPTS
from tests.engine.test_service import _service, wait_for_log, wait_for_status

BOSS = "U0BOSS001"


def gate_env(**extra) -> dict:
    return {"production": {"label": "生产环境", "script": str(SCRIPTS / "gate.sh"), **extra}}


async def wait_for_gate(service: DeployService, deploy_id: int, timeout: float = 30) -> Deploy:
    """The deploy once it waits at an open (unanswered) gate."""
    async with asyncio.timeout(timeout):
        while True:
            deploy = await service.get(deploy_id)
            if deploy.state is Status.RUNNING and deploy.gate_question and deploy.gate_answer is None:
                return deploy
            assert not deploy.state.is_finished, deploy.error_message
            await asyncio.sleep(0.05)


async def gate_audit(service: DeployService, deploy_id: int) -> list[AuditEvent]:
    async with service.db.session() as session:
        query = select(AuditEvent).where(AuditEvent.deploy_id == deploy_id, AuditEvent.action == "gate")
        return list((await session.execute(query.order_by(AuditEvent.id))).scalars())


# --- the scanner ---------------------------------------------------------------------------------


def test_a_gate_line_is_found_only_when_it_ends():
    scanner = OutputScanner()
    assert scanner.feed("[1/2] canary\n::gate:: 继续？  \r\n".encode())[1:] == [GateReached("继续？")]
    assert scanner.feed(b"some ::gate:: not at the start\n::gate:: go on?\n::gate:: half") == [
        GateReached("go on?")
    ]
    assert scanner.finish() == []  # a gate without its newline is no gate: nobody reads the answer


def test_a_custom_step_pattern_keeps_gates():
    scanner = OutputScanner(r"^STEP (?P<n>\d+) of (?P<m>\d+)")
    assert scanner.feed(b"STEP 1 of 2\n::gate:: ok?\n")[1:] == [GateReached("ok?")]


# --- answers -------------------------------------------------------------------------------------


async def test_continue_lets_the_script_go_on_to_success(make_config):
    async with _service(make_config(environments=gate_env())) as service:
        events = []
        service.events.subscribe(events.append)
        deploy = await service.trigger("production", "main", user=ADMIN)
        waiting = await wait_for_gate(service, deploy.id)
        assert waiting.gate_question == "canary at 10% looks fine, go on? (1)"
        assert waiting.gate_asked_at is not None

        answered = await service.answer_gate(deploy.id, user=ADMIN, answer="continue")
        assert (answered.gate_answer, answered.gate_answered_by) == ("continue", ADMIN)
        done = await wait_for_status(service, deploy.id, Status.SUCCESS, Status.FAILED, timeout=10)
        assert done.state is Status.SUCCESS, done.error_message
        log = (await service.logs(deploy.id)).text
        assert "::gate:: continue (by U0ADMIN01)\nanswer 1: continue\n[2/2] everyone" in log

        await service.wait_idle()
        kinds = [type(event) for event in events]
        assert kinds.index(StepChanged) < kinds.index(GateAsked) < kinds.index(GateAnswered)
        asked = next(event for event in events if isinstance(event, GateAsked))
        assert asked.question == waiting.gate_question and asked.deploy.gate_answer is None
        told = next(event for event in events if isinstance(event, GateAnswered))
        assert (told.answer, told.user, told.question) == ("continue", ADMIN, waiting.gate_question)
        assert kinds[-1] is DeployFinished
        [row] = await gate_audit(service, deploy.id)
        assert (row.actor, row.environment) == (ADMIN, "production")
        assert row.detail.startswith("continue: canary at 10%")


async def test_abort_fails_the_deploy_saying_who_aborted(make_config):
    async with _service(make_config(environments=gate_env())) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        await wait_for_gate(service, deploy.id)
        await service.answer_gate(deploy.id, user=ADMIN, answer="abort")
        done = await wait_for_status(service, deploy.id, Status.FAILED, Status.SUCCESS, timeout=10)
        assert done.state is Status.FAILED
        assert done.error_message.startswith("已在确认点被 U0ADMIN01 中止 · ")
        assert "ERROR: stopped at gate 1 (abort)" in done.error_message
        assert "::gate:: abort (by U0ADMIN01)" in (await service.logs(deploy.id)).text


async def test_no_answer_in_time_answers_abort(make_config):
    config = make_config(environments=gate_env(gate_timeout_minutes=0.02))
    async with _service(config) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        done = await wait_for_status(service, deploy.id, Status.FAILED, Status.SUCCESS, timeout=15)
        assert done.state is Status.FAILED
        assert done.error_message.startswith("确认点 0.02 分钟内无人回答，已自动中止 · ")
        assert (done.gate_answer, done.gate_answered_by) == ("abort", "timeout")
        assert "::gate:: abort (by timeout)" in (await service.logs(deploy.id)).text
        [row] = await gate_audit(service, deploy.id)
        assert row.actor == "deploybot" and row.detail.startswith("abort (timeout)")


async def test_the_deploy_timeout_stands_still_while_a_gate_waits(make_config):
    config = make_config(environments=gate_env(timeout_minutes=0.02))  # 1.2 s
    async with _service(config) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        await wait_for_gate(service, deploy.id)
        await asyncio.sleep(2.5)  # twice the deploy's timeout
        assert (await service.get(deploy.id)).state is Status.RUNNING
        await service.answer_gate(deploy.id, user=ADMIN, answer="continue")
        done = await wait_for_status(service, deploy.id, Status.SUCCESS, Status.FAILED, timeout=10)
        assert done.state is Status.SUCCESS, done.error_message


async def test_two_gates_one_answer_each_and_a_stale_button_answers_nothing(make_config):
    async with _service(make_config(environments=gate_env()), GATES="2") as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        first = await wait_for_gate(service, deploy.id)
        await service.answer_gate(deploy.id, user=ADMIN, answer="continue", asked_at=first.gate_asked_at)
        second = await wait_for_gate(service, deploy.id)
        assert second.gate_question.endswith("(2)") and second.gate_asked_at != first.gate_asked_at
        # the first question's button, clicked again: refused, the second gate stays open
        with pytest.raises(errors.GateNotOpen) as refused:
            await service.answer_gate(deploy.id, user=ADMIN, answer="abort", asked_at=first.gate_asked_at)
        assert "另一个问题" in refused.value.message("zh")
        assert (await service.get(deploy.id)).gate_answer is None
        await service.answer_gate(deploy.id, user=ADMIN, answer="continue", asked_at=second.gate_asked_at)
        done = await wait_for_status(service, deploy.id, Status.SUCCESS, Status.FAILED, timeout=10)
        assert done.state is Status.SUCCESS, done.error_message
        assert len(await gate_audit(service, deploy.id)) == 2


async def test_answered_twice_is_answered_once(make_config):
    async with _service(make_config(environments=gate_env()), GATES="2") as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        gate = await wait_for_gate(service, deploy.id)
        results = await asyncio.gather(
            service.answer_gate(deploy.id, user=ADMIN, answer="continue", asked_at=gate.gate_asked_at),
            service.answer_gate(deploy.id, user=BOSS, answer="abort", asked_at=gate.gate_asked_at),
            return_exceptions=True,
        )
        refusals = [r for r in results if isinstance(r, Exception)]
        assert len(refusals) == 1 and isinstance(refusals[0], errors.GateNotOpen), results
        assert len(await gate_audit(service, deploy.id)) == 1
        # a second click on the same gate, right after: refused, saying who answered
        with pytest.raises(errors.GateNotOpen):
            await service.answer_gate(deploy.id, user=ADMIN, answer="abort", asked_at=gate.gate_asked_at)
        await service.cancel(deploy.id, user=ADMIN)
        await service.wait_idle()


async def test_a_second_click_names_who_answered(make_config):
    # renewals far apart: the owner looks at the row only when told to
    config = make_config(environments=gate_env(), bot={"heartbeat_seconds": 20, "lease_seconds": 60})
    async with _service(config) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        await wait_for_gate(service, deploy.id)
        async with service.db.session() as session:  # answered, not yet given to the script
            row = await session.get(Deploy, deploy.id)
            row.gate_answer, row.gate_answered_by = "continue", BOSS
        with pytest.raises(errors.GateAlreadyAnswered) as refused:
            await service.answer_gate(deploy.id, user=ADMIN, answer="abort")
        assert refused.value.message("zh") == f"部署 #{deploy.id} 的这个确认已有回答：{BOSS} 选择了「继续」"
        after = await service.get(deploy.id)
        assert (after.gate_answer, after.gate_answered_by) == ("continue", BOSS)
        service.gates.signalled(deploy.id)  # as a signal from the answering process would
        done = await wait_for_status(service, deploy.id, Status.SUCCESS, Status.FAILED, timeout=10)
        assert done.state is Status.SUCCESS


async def test_bad_answers_and_deploys_without_a_gate_are_refused(make_config):
    environments = {**gate_env(), "staging": {"script": str(SCRIPTS / "sleepy.sh")}}
    async with _service(make_config(environments=environments)) as service:
        with pytest.raises(errors.DeployNotFound):
            await service.answer_gate(999, user=ADMIN, answer="continue")
        sleepy = await service.trigger("staging", "main", user=ADMIN)
        await wait_for_status(service, sleepy.id, Status.RUNNING)
        with pytest.raises(errors.GateNotOpen) as refused:
            await service.answer_gate(sleepy.id, user=ADMIN, answer="continue")
        assert "没有待回答的问题" in refused.value.message("zh")
        deploy = await service.trigger("production", "main", user=ADMIN)
        await wait_for_gate(service, deploy.id)
        with pytest.raises(errors.GateAnswerInvalid):
            await service.answer_gate(deploy.id, user=ADMIN, answer="yes")
        assert (await service.get(deploy.id)).gate_answer is None
        for running in (sleepy, deploy):
            await service.cancel(running.id, user=ADMIN)
        await service.wait_idle()


async def test_only_approvers_answer(make_config):
    async with _service(make_config(environments=gate_env(approvers=[BOSS]))) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        await wait_for_gate(service, deploy.id)
        with pytest.raises(errors.NotPermitted):
            await service.answer_gate(deploy.id, user=ADMIN, answer="continue")
        assert (await service.get(deploy.id)).gate_answer is None
        assert await gate_audit(service, deploy.id) == []
        await service.answer_gate(deploy.id, user=BOSS, answer="continue")
        done = await wait_for_status(service, deploy.id, Status.SUCCESS, Status.FAILED, timeout=10)
        assert done.state is Status.SUCCESS


async def test_cancel_while_a_gate_waits_ends_it_cancelled_and_a_late_answer_is_refused(make_config):
    async with _service(make_config(environments=gate_env())) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        await wait_for_gate(service, deploy.id)
        await service.cancel(deploy.id, user=ADMIN)
        done = await wait_for_status(service, deploy.id, Status.CANCELLED, Status.FAILED, timeout=10)
        assert done.state is Status.CANCELLED
        with pytest.raises(errors.GateNotOpen) as refused:
            await service.answer_gate(deploy.id, user=ADMIN, answer="continue")
        assert "已取消" in refused.value.message("zh")
        assert (await service.get(deploy.id)).gate_answer is None


async def test_eof_on_the_pipe_means_abort(make_config, tmp_path):
    """A script that does not die of SIGTERM still stops at its gate: the cancel closes the pipe."""
    script = tmp_path / "stubborn.sh"
    script.write_text(
        "#!/usr/bin/env bash\ntrap '' TERM\necho '::gate:: go?'\n"
        'if read -r answer <&"$DEPLOY_GATE_FD"; then echo "got $answer"; else echo "EOF"; exit 4; fi\n'
    )
    script.chmod(0o755)
    config = make_config(
        environments={"production": {"script": str(script)}}, bot={"cancel_grace_seconds": 30}
    )
    async with _service(config) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        await wait_for_gate(service, deploy.id)
        await service.cancel(deploy.id, user=ADMIN)
        done = await wait_for_status(service, deploy.id, Status.CANCELLED, Status.FAILED, timeout=10)
        assert done.state is Status.CANCELLED
        await wait_for_log(service, deploy.id, b"EOF\n")


async def test_an_answer_given_to_another_process_reaches_the_owner(make_config, db_url):
    # On PostgreSQL the owner renews rarely: only the signal can bring the answer within seconds.
    slow = {"heartbeat_seconds": 20, "lease_seconds": 60} if db_url.startswith("postgresql") else {}
    config = make_config(environments=gate_env(), bot=slow)
    async with _service(config) as owner, _service(config) as other:
        deploy = await owner.trigger("production", "main", user=ADMIN)
        await wait_for_gate(other, deploy.id)
        assert deploy.id not in other.running_ids
        await other.answer_gate(deploy.id, user=ADMIN, answer="continue")
        done = await wait_for_status(other, deploy.id, Status.SUCCESS, Status.FAILED, timeout=5)
        assert done.state is Status.SUCCESS, done.error_message
