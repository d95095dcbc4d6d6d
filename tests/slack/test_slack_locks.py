"""Environment locks in Slack end to end (DESIGN §9): signed `/deploy lock|unlock|locks` commands to
the real server, answered ephemerally; the reminder DM and its 延长 1 小时 / 解锁 buttons; the DM to a
holder whose lock a manager ended; the channel told when a lock expires; the lock shown on cards
and in App Home; usage errors and English."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from bot.i18n import t
from storage.models import EnvironmentLock, utcnow
from tests.slackbot_fixtures import ADMIN, CHANNEL, action_ids, texts

OTHER = "U0OPS0002"


def dms(bot, user: str) -> list[dict]:
    """Messages the app posted in its DM with `user`, oldest first (with their channel)."""
    channel = "D" + user[1:]
    return [{**m, "channel": c} for (c, _), m in bot.fake.messages.items() if c == channel]


async def lock_rows(bot) -> list[EnvironmentLock]:
    async with bot.service.db.session() as session:
        return list((await session.execute(select(EnvironmentLock))).scalars())


async def expire(bot, environment: str) -> None:
    async with bot.service.db.session() as session:
        past = utcnow() - timedelta(seconds=1)
        await session.execute(
            update(EnvironmentLock).where(EnvironmentLock.environment == environment).values(expires_at=past)
        )


async def test_lock_list_and_unlock(bot) -> None:
    answer = await bot.answer("/deploy lock prod 30m 发版验证 <@U0EVIL>")
    assert answer["response_type"] == "ephemeral"
    shown = texts(answer)
    assert "已锁定 生产环境 (`production`)" in shown and "`/deploy unlock production`" in shown
    assert "发版验证 &lt;@U0EVIL&gt;" in shown, "the reason is shown as text, never as a mention"
    [row] = await lock_rows(bot)
    assert (row.holder, row.reason) == (ADMIN, "发版验证 <@U0EVIL>")

    listed = await bot.answer("/deploy locks")
    assert t("zh", "ui.locks.title") in texts(listed)
    [section] = [b for b in listed["blocks"] if b.get("block_id") == "lock_production"]
    assert f"<@{ADMIN}> 锁定" in section["text"]["text"] and "还有 30分" in section["text"]["text"]

    again = await bot.answer("/deploy lock production 2h")
    assert "已延长" in texts(again)

    assert "已解锁" in texts(await bot.answer("/deploy unlock production"))
    assert await lock_rows(bot) == []
    assert t("zh", "ui.locks.empty") in texts(await bot.answer("/deploy locks"))


async def test_someone_else_is_refused_while_locked_and_the_card_shows_the_lock(start_bot) -> None:
    bot = await start_bot(bot={"admins": [ADMIN, OTHER], "managers": [ADMIN]})
    await bot.answer("/deploy lock production 1h 数据库升级")

    refused = texts(await bot.answer("/deploy production main", user=OTHER))
    assert "生产环境" in refused and ADMIN in refused and "数据库升级" in refused
    refused = texts(await bot.answer("/deploy unlock production", user=OTHER))
    assert t("zh", "error.locked_by_other", environment="生产环境", holder=ADMIN) in refused
    refused = texts(await bot.answer("/deploy lock production", user=OTHER))
    assert "数据库升级" in refused
    assert (await bot.service.history()).total == 0 and len(await lock_rows(bot)) == 1

    await bot.command("/deploy production main")  # the holder deploys
    deploy = await bot.finished()
    card = bot.card(deploy.id)
    [line] = [b for b in card["blocks"] if b.get("block_id") == f"deploy_{deploy.id}_lock"]
    assert f"<@{ADMIN}> 锁定" in texts(line) and "数据库升级" in texts(line)


async def test_a_manager_unlocks_and_the_holder_is_told(start_bot) -> None:
    bot = await start_bot(bot={"admins": [ADMIN, OTHER], "managers": [OTHER]})
    await bot.answer("/deploy lock staging 3h")
    answer = texts(await bot.answer("/deploy unlock staging", user=OTHER))
    assert f"原锁定人 <@{ADMIN}>" in answer
    await bot.wait_for(lambda: dms(bot, ADMIN))
    [dm] = dms(bot, ADMIN)
    assert f"<@{OTHER}> 解除了你对 预发布环境 (`staging`) 的锁定" in texts(dm)


async def test_the_reminder_dm_extends_and_unlocks(bot) -> None:
    await bot.answer("/deploy lock production 5m")
    before = (await lock_rows(bot))[0].expires_at
    await bot.service.locks.tick()
    await bot.wait_for(lambda: dms(bot, ADMIN))
    [dm] = dms(bot, ADMIN)
    assert action_ids(dm) == {"lock_extend", "lock_release"}
    assert "延长 1 小时" in texts(dm) and "解锁" in texts(dm) and "将在" in texts(dm)
    await bot.service.locks.tick()
    assert len(dms(bot, ADMIN)) == 1, "reminded once"

    await bot.click("lock_extend", "production", message=dm)
    await bot.wait_for(lambda: "已延长" in texts(dms(bot, ADMIN)[0]))
    assert action_ids(dms(bot, ADMIN)[0]) == set(), "the answer replaces the reminder"
    [row] = await lock_rows(bot)
    assert (row.expires_at - before).total_seconds() > 3500

    await bot.click("lock_release", "production", message=dm)  # an old reminder's button still works
    await bot.wait_for(lambda: "已解锁" in texts(dms(bot, ADMIN)[0]))
    assert await lock_rows(bot) == []


async def test_expiry_is_told_in_the_channel_and_home_shows_locks(start_bot) -> None:
    bot = await start_bot(bot={"notify_channel": CHANNEL})
    await bot.answer("/deploy lock staging 1d 压测")
    await bot.home_opened()
    await bot.wait_for(lambda: bot.fake.home(ADMIN))
    home = bot.fake.home(ADMIN)
    [section] = [b for b in home["blocks"] if b.get("block_id") == "home_env_staging"]
    assert f"<@{ADMIN}> 锁定" in texts(section) and "压测" in texts(section)

    await expire(bot, "staging")
    await bot.service.locks.tick()
    await bot.wait_for(lambda: any("已到期" in texts(m) for m in bot.fake.channel_history(CHANNEL)))
    await bot.service.locks.tick()
    await bot.settle()
    assert sum("已到期" in texts(m) for m in bot.fake.channel_history(CHANNEL)) == 1
    assert await lock_rows(bot) == []


async def test_usage_errors_change_nothing(bot) -> None:
    for text, wanted in [
        ("/deploy lock", "请指定环境"),
        ("/deploy lock nowhere 1h", "未知的部署环境 `nowhere`"),
        ("/deploy lock production 0m", "锁定时长 `0m` 无效"),
        ("/deploy lock production 99d", "锁定时长 `99d` 无效"),
        ("/deploy lock production -1h", "锁定时长 `-1h` 无效"),
        ("/deploy unlock production now", "`now`"),
        ("/deploy locks all", "`all`"),
    ]:
        answer = texts(await bot.answer(text))
        assert wanted in answer, (text, answer)
        assert "/deploy lock" in answer or "/deploy unlock" in answer or "/deploy locks" in answer
    assert "没有被锁定" in texts(await bot.answer("/deploy unlock production"))
    assert await lock_rows(bot) == []
    help_text = texts(await bot.answer("/deploy help"))
    assert t("zh", "cmd.help.lock") in help_text and t("zh", "cmd.help.locks") in help_text


async def test_in_english(start_bot) -> None:
    bot = await start_bot(bot={"locale": "en"})
    refused = texts(await bot.answer("/deploy lock production 1x"))
    assert "Invalid input: lock duration `1x`" in refused and "/deploy lock <env>" in refused
    assert "Name the environment" in texts(await bot.answer("/deploy unlock"))
    answer = texts(await bot.answer("/deploy lock production 5m"))
    assert "is locked for you until" in answer
    await bot.service.locks.tick()
    await bot.wait_for(lambda: dms(bot, ADMIN))
    [dm] = dms(bot, ADMIN)
    assert "Extend 1 hour" in texts(dm) and "Unlock" in texts(dm) and "Extend it?" in texts(dm)
    await bot.click("lock_release", "production", message=dm)
    await bot.wait_for(lambda: "is unlocked" in texts(dms(bot, ADMIN)[0]))
