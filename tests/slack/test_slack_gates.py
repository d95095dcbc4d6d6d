"""Gates over Slack's HTTP endpoint: the question with 继续 / 中止 on the card and in the thread, a
click answers it, who answered shows in the thread, and later clicks are refused."""

from __future__ import annotations

from bot.deploy.events import GateAnswered, GateAsked
from bot.slack.blocks.gate import gate_blocks, gate_note, gate_value, read_gate_value
from storage.models import Deploy, Status, utcnow
from tests.blockkit import validate_message
from tests.conftest import SCRIPTS
from tests.slackbot_fixtures import ADMIN, action_ids, texts

OTHER_ADMIN = "U0OPS0002"
QUESTION = "canary at 10% looks fine, go on?"


def gate_config(gates: int = 1) -> dict:
    env = {"label": "生产环境", "script": str(SCRIPTS / "gate.sh"), "args": [str(gates)]}
    return {"environments": {"production": env}, "bot": {"admins": [ADMIN, OTHER_ADMIN]}}


def button_value(message: dict, action_id: str) -> str:
    return next(
        element["value"]
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == action_id
    )


def asking(bot, deploy_id: int, number: int) -> dict | None:
    """The thread reply that asks gate `number`, with its buttons."""
    return next(
        (
            reply
            for reply in bot.thread_replies(deploy_id)
            if f"({number})" in texts(reply) and "gate_continue" in action_ids(reply)
        ),
        None,
    )


async def test_the_question_shows_with_buttons_and_a_click_answers_it(start_bot) -> None:
    bot = await start_bot(**gate_config())
    await bot.command("/deploy production main")
    deploy = await bot.deploy()
    await bot.wait_for(lambda: bot.has_card(deploy.id) and "gate_continue" in action_ids(bot.card(deploy.id)))
    card = bot.card(deploy.id)
    assert f"{QUESTION} (1)" in texts(card) and "继续" in texts(card) and "中止" in texts(card)
    await bot.wait_for(lambda: asking(bot, deploy.id, 1))
    question = asking(bot, deploy.id, 1)
    steps = [texts(reply) for reply in bot.thread_replies(deploy.id)]
    assert any("[1/2]" in text for text in steps[: steps.index(texts(question))]), "the step comes first"

    value = button_value(question, "gate_continue")
    await bot.click("gate_continue", value, message=question)
    done = await bot.finished()
    assert done.state is Status.SUCCESS, done.error_message
    assert "你已为部署" in bot.fake.ephemerals(ADMIN)[-1]["text"]

    replies = [texts(reply) for reply in bot.thread_replies(deploy.id)]
    answered = next(i for i, text in enumerate(replies) if f"<@{ADMIN}> 选择了 *继续*" in text)
    assert answered > replies.index(texts(question))
    assert any("[2/2]" in text for text in replies[answered + 1 :]), "the next step follows the answer"
    card = bot.card(deploy.id)
    assert "gate_continue" not in action_ids(card) and QUESTION not in texts(card)

    # after the end: the button answers nothing, and says why
    await bot.click("gate_abort", button_value(question, "gate_abort"), message=question, user=OTHER_ADMIN)
    await bot.settle()
    refusal = bot.fake.ephemerals(OTHER_ADMIN)[-1]["text"]
    assert f"部署 #{deploy.id} 没有在等待确认" in refusal and "部署成功" in refusal
    assert (await bot.service.get(deploy.id)).gate_answered_by == ADMIN


async def test_a_second_click_is_refused_and_abort_fails_the_deploy(start_bot) -> None:
    bot = await start_bot(**gate_config(gates=2))
    await bot.command("/deploy production main")
    deploy = await bot.deploy()
    await bot.wait_for(lambda: asking(bot, deploy.id, 1))
    first = asking(bot, deploy.id, 1)
    await bot.click("gate_continue", button_value(first, "gate_continue"), message=first)
    await bot.wait_for(lambda: asking(bot, deploy.id, 2))

    # the first question's button again, by someone else: refused, the second gate stays open
    await bot.click("gate_abort", button_value(first, "gate_abort"), message=first, user=OTHER_ADMIN)
    await bot.wait_for(lambda: bot.fake.ephemerals(OTHER_ADMIN))
    refusal = bot.fake.ephemerals(OTHER_ADMIN)[-1]["text"]
    assert "另一个问题" in refusal or "已有回答" in refusal, refusal
    now = await bot.service.get(deploy.id)
    assert now.state is Status.RUNNING and now.gate_answer is None

    await bot.wait_for(lambda: (QUESTION + " (2)") in texts(bot.card(deploy.id)))
    card = bot.card(deploy.id)
    await bot.click("gate_abort", button_value(card, "gate_abort"), message=card, user=OTHER_ADMIN)
    done = await bot.finished()
    assert done.state is Status.FAILED
    assert done.error_message.startswith(f"已在确认点被 {OTHER_ADMIN} 中止")
    replies = texts(bot.thread_replies(deploy.id))
    assert f"<@{ADMIN}> 选择了 *继续*" in replies and f"<@{OTHER_ADMIN}> 选择了 *中止*" in replies


# --- the builders ----------------------------------------------------------------------------------


def gated(**fields) -> Deploy:
    base = dict(
        id=7,
        environment="production",
        branch="main",
        status=Status.RUNNING.value,
        deployed_by=ADMIN,
        gate_question="金丝雀 10% 正常，继续全量发布？",
        gate_asked_at=utcnow(),
    )
    return Deploy(**{**base, **fields})


def test_a_button_names_its_gate_exactly() -> None:
    deploy = gated()
    assert read_gate_value(gate_value(deploy)) == (7, deploy.gate_asked_at)
    assert read_gate_value("7") == (7, None)


def test_gate_blocks_and_notes_are_valid_block_kit(cfg) -> None:
    env = cfg.environments["production"]
    deploy = gated()
    blocks = gate_blocks(deploy, env, "zh", "deploy_7")
    assert {b["block_id"] for b in blocks} == {"deploy_7_gate", "deploy_7_gate_who", "deploy_7_gate_actions"}
    assert gate_blocks(gated(gate_answer="continue"), env, "zh", "x") == []
    assert gate_blocks(gated(status=Status.FAILED.value), env, "zh", "x") == []
    for locale in ("zh", "en"):
        asked = gate_note(deploy, GateAsked(deploy, deploy.gate_question), env, locale)
        gone = gate_note(gated(gate_answer="abort"), GateAsked(deploy, deploy.gate_question), env, locale)
        assert "gate_continue" in action_ids(asked.as_kwargs()) and not action_ids(gone.as_kwargs())
        for user in (ADMIN, "timeout"):
            note = gate_note(deploy, GateAnswered(deploy, deploy.gate_question, "abort", user), env, locale)
            validate_message(note.as_kwargs())
        for message in (asked, gone):
            validate_message(message.as_kwargs())
