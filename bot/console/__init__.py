"""`deploybot console` and the local Slack it runs against.

The local workspace: team.py (who it is), state.py (what it holds), webapi.py (what each Web API
method does to it), workspace.py (LocalSlack, serving it on 127.0.0.1). What Slack sends to the
app: payloads.py, signed by signing.py and delivered by driver.py (SlackDriver, also used by the
tests and the benchmarks). The console itself: session.py (Console, run_console), screen.py,
modals.py, forms.py, render.py, terminal.py.
"""
