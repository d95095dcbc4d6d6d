"""Thread replies of a deploy (bot/slack/blocks/thread.py): step updates and the final reply."""

from __future__ import annotations

from bot.deploy.progress import Step
from bot.i18n import t
from bot.slack.blocks.thread import final_reply, step_reply, steps_reply
from tests.slack.blocks_fixtures import (
    GUEST,
    all_texts,
    buttons,
    check,
    code_bodies,
    ctx,
    deploy,
    running,
    target,
    text_of,
)


def test_step_reply_quotes_the_previous_step() -> None:
    step = Step(2, 7, "打包", ("npm run build", "built in 31s & <ok>"))
    reply = check(step_reply(running(), step, "zh"))
    assert reply.text == "[2/7] 打包"
    assert text_of(reply, "step_title") == "*[2/7]* 打包"
    assert code_bodies(text_of(reply, "step_log")) == ["npm run build\nbuilt in 31s &amp; &lt;ok&gt;"]


def test_step_reply_without_lines_or_total_or_title() -> None:
    reply = check(step_reply(running(), Step(3, None, ""), "en"))
    assert reply.text == "[3] Step 3" and len(reply.blocks) == 1


def test_step_reply_stays_in_limits_with_huge_lines() -> None:
    huge = ("&" * 1_000_000, "<" * 1_000_000, "x" * 1_000_000 + "NEWEST")
    reply = check(step_reply(running(), Step(2, 7, "打包", huge), "zh"))
    assert len(text_of(reply, "step_log")) <= 3000


def test_step_reply_keeps_the_newest_of_ten_thousand_lines_and_says_how_many_were_left_out() -> None:
    lines = tuple(f"line {i} ```" for i in range(10_000))
    reply = check(step_reply(running(), Step(2, 7, "打包", lines), "zh"))
    shown = text_of(reply, "step_log")
    body = code_bodies(shown)[0].split("\n")
    assert body[-1] == "line 9999 ˋˋˋ" and "```" not in "".join(body)
    assert len(shown) <= 3000
    assert t("zh", "ui.log.omitted", count=10_000 - len(body)) in shown


def test_final_reply_on_success_mentions_the_deployer_with_duration_and_rollback(cfg) -> None:
    reply = check(final_reply(deploy(), ctx(cfg, rollback=target()), ("done",), "zh"))
    summary = text_of(reply, "final_summary")
    assert summary.startswith("<@U0ADMIN01> :white_check_mark: *部署成功* #42") and "耗时 2分41秒" in summary
    assert reply.text.startswith("<@U0ADMIN01> ")
    rollback = buttons(reply)["rollback"]
    assert (rollback["value"], rollback["text"]["text"]) == ("42", "回滚到 #41")
    assert "a1b2c3d" in rollback["confirm"]["text"]["text"]
    assert "```" not in all_texts(reply.blocks)  # no log on success


def test_final_reply_on_success_without_an_earlier_version(cfg) -> None:
    reply = check(final_reply(deploy(deployed_by="api:ci"), ctx(cfg), (), "en"))
    assert text_of(reply, "final_summary").startswith("api:ci :white_check_mark: *Succeeded* #42")
    assert "took 2m 41s" in text_of(reply, "final_summary")
    assert set(buttons(reply)) == {"view_logs"}


def test_final_reply_on_failure_has_the_error_and_the_last_thirty_lines(cfg) -> None:
    row = deploy(id=44, status="failed", error_message="脚本退出码 3: ERROR: boom")
    tail = [f"line {i}" for i in range(60)]
    reply = check(final_reply(row, ctx(cfg, rollback=target()), tail, "zh"))
    assert "脚本退出码 3: ERROR: boom" in text_of(reply, "final_error")
    body = code_bodies(text_of(reply, "final_tail"))[0].split("\n")
    assert body == [f"line {i}" for i in range(30, 60)]
    assert "rollback" not in buttons(reply) and "view_logs" in buttons(reply)


def test_final_reply_tail_stays_in_limits_with_megabyte_lines(cfg) -> None:
    row = deploy(id=44, status="failed", error_message="E" * 1_000_000)
    tail = ["<&>" * 400_000 for _ in range(29)] + ["the end"]
    reply = check(final_reply(row, ctx(cfg), tail, "zh"))
    shown = text_of(reply, "final_tail")
    assert len(shown) <= 3000 and code_bodies(shown)[0].endswith("the end")
    assert len(text_of(reply, "final_error")) <= 3000


def test_final_reply_on_cancel_names_who(cfg) -> None:
    row = deploy(id=45, status="cancelled", cancelled_by=GUEST, error_message="已被 U0GUEST01 取消")
    reply = check(final_reply(row, ctx(cfg), ["step 3", "Terminated"], "zh"))
    assert f"已被 <@{GUEST}> 取消" in text_of(reply, "final_summary")
    assert code_bodies(text_of(reply, "final_tail")) == ["step 3\nTerminated"]


def test_steps_reply_lists_steps_that_waited_together_with_the_newest_ones_lines() -> None:
    steps = [
        Step(3, 7, "上传", ("step 2 said this",)),
        Step(4, 7, "解压 <*>", ("step 3 said this",)),
        Step(5, 7, "", ("uploaded 12 MB", "unpacked & ready")),
    ]
    reply = check(steps_reply(running(), steps, "zh"))
    assert text_of(reply, "step_title") == "*[3/7]* 上传\n*[4/7]* 解压 &lt;*&gt;\n*[5/7]* 步骤 5"
    assert reply.text == "[3/7] 上传 · [4/7] 解压 &lt;*&gt; · [5/7] 步骤 5"
    assert code_bodies(text_of(reply, "step_log")) == ["uploaded 12 MB\nunpacked &amp; ready"]


def test_steps_reply_of_one_step_is_the_step_reply() -> None:
    step = Step(2, 7, "打包", ("npm run build",))
    assert steps_reply(running(), [step], "zh") == step_reply(running(), step, "zh")


def test_steps_reply_of_a_thousand_steps_keeps_the_first_and_the_newest_in_limits() -> None:
    steps = [Step(n, 1000, "x" * 500, ("l" * 10_000,) * 100) for n in range(1, 1001)]
    reply = check(steps_reply(running(), steps, "en"))
    lines = text_of(reply, "step_title").split("\n")
    assert lines[0].startswith("*[1/1000]*") and lines[1] == "…"
    assert [line.split()[0] for line in lines[2:]] == [
        f"*[{n}/1000]*" for n in range(1001 - len(lines[2:]), 1001)
    ]
    assert len(text_of(reply, "step_title")) <= 3000 and len(reply.text) <= 4000


def test_final_reply_lists_the_steps_that_had_no_reply_of_their_own(cfg) -> None:
    steps = [Step(6, 7, "restart"), Step(7, 7, "health check")]
    reply = check(final_reply(deploy(), ctx(cfg, rollback=target()), (), "zh", steps=steps))
    assert reply.blocks[0]["block_id"] == "final_steps"
    assert text_of(reply, "final_steps") == "*[6/7]* restart\n*[7/7]* health check"
    assert text_of(reply, "final_summary").startswith("<@U0ADMIN01> ") and reply.text.startswith(
        "<@U0ADMIN01> "
    )
    assert "final_steps" not in {b.get("block_id") for b in final_reply(deploy(), ctx(cfg), (), "zh").blocks}
