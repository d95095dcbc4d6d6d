from storage.models import Status


async def test_a_deploy_runs_its_script_to_success(service):
    deploy = await service.trigger("prod", "main", user="U0ADMIN01")
    await service.wait_idle()
    done = await service.get(deploy.id)
    assert done.state is Status.SUCCESS
    assert (done.step_current, done.step_total) == (7, 7)
    assert b"[7/7] step 7" in (await service.logs(deploy.id)).data
