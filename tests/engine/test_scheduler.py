"""The scheduler wires the reaper and retention jobs from config."""

from bot.deploy.scheduler import Scheduler


async def test_jobs_follow_the_config(make_config, service):
    config = make_config(retention={"cron": "15 4 * * 1"}, bot={"reaper_interval_seconds": 7})
    scheduler = Scheduler(config, service)
    scheduler.start()
    try:
        jobs = scheduler.jobs()
        assert jobs["reaper"] == "interval[0:00:07]"
        assert "hour='4'" in jobs["retention"] and "minute='15'" in jobs["retention"]
        assert "day_of_week='mon'" in jobs["retention"]
    finally:
        scheduler.shutdown()


def test_crontab_weekdays_count_from_sunday():
    from bot.config import cron_trigger

    assert "day_of_week='sun'" in str(cron_trigger("0 3 * * 0"))
    assert "day_of_week='sun'" in str(cron_trigger("0 3 * * 7"))
    assert "day_of_week='mon-fri'" in str(cron_trigger("0 3 * * 1-5"))
    assert "day_of_week='*/2'" in str(cron_trigger("0 3 * * */2"))
