"""The modal the console's user is filling in: asked field by field or filled in one line, a select
that makes the bot redraw the modal sent the moment it changes, the submission and what the bot
answers to it (field errors, a new view, close), and closing modals the way the user closes them.
Which modals are open is the screen's (screen.py); reading the answers is forms.py.
"""

from __future__ import annotations

from bot.console.driver import SlackDriver
from bot.console.forms import FormField, ModalForm, is_assignments
from bot.console.render import DIM, RED, render_errors
from bot.console.screen import Screen
from bot.console.terminal import Terminal
from bot.i18n import t


class Modals:
    """`form` is the modal being asked, if any; `driver` acts as `user`."""

    def __init__(
        self, driver: SlackDriver, screen: Screen, terminal: Terminal, *, user: str, locale: str
    ) -> None:
        self.driver = driver
        self.screen = screen
        self.terminal = terminal
        self.user = user
        self.locale = locale
        self.form: ModalForm | None = None

    def shown(self, view: dict, updated: bool) -> None:
        """A modal is on top: ask its fields, unless it is an update of one not being asked now."""
        if updated and self.form is not None and self.form.view.get("id") != view["id"]:
            return
        self._start(view)

    def prompt(self) -> str | None:
        if self.form is None or self.form.current is None:
            return None
        return self.form.prompt(self.form.current, self.locale)

    async def answer(self, text: str) -> None:
        """A line typed while a modal is asked: one field's answer, or every field at once."""
        form = self.form
        assert form is not None
        if is_assignments(text):
            values = form.assignments(text, self.locale)
            for item in form.fields:
                if item.block_id in values and item.kind == "static_select":
                    form = await self._choose(form, item, values[item.block_id])
            form.values.update(values)
            await self._submit(form)
            return
        item = form.current
        assert item is not None
        if text:
            form.answer(item, text, self.locale)
            if item.kind == "static_select":
                form = await self._choose(form, item, form.values[item.block_id])
        elif item.kind == "checkbox" and item.block_id not in form.values:
            form.values[item.block_id] = form.checked(item)
        form.index += 1
        if form.current is None:
            await self._submit(form)

    async def close(self, *, by_user: bool = True, announce: bool = False, top_only: bool = False) -> None:
        """Close the open modals (or only the top one, uncovering the one below). Closed by the
        user rather than by the app, Slack tells the app when the modal asked for it."""
        if not self.screen.modals and announce:
            self.terminal.say(t(self.locale, "console.no_modal"), style=DIM)
        closing = list(reversed(self.screen.modals))[: 1 if top_only else None]
        self.form = None
        for key in closing:
            surface = self.screen.surfaces.get(key)
            self._drop(key.removeprefix("view:"))
            if by_user and surface and surface.view and surface.view.get("notify_on_close"):
                await self.driver.close_view(user=self.user, view=surface.view)
            if announce:
                self.terminal.say(t(self.locale, "console.modal_closed"), style=DIM)
        if top_only:
            self._uncover()

    def _start(self, view: dict) -> None:
        self.form = ModalForm.of(view)
        if self.form is not None:
            self.terminal.say(t(self.locale, "console.form_hint", example=self.form.hint()), style=DIM)

    async def _choose(self, form: ModalForm, item: FormField, value: str) -> ModalForm:
        """A select whose input block Slack sends the moment it changes (`dispatch_action`): send
        it as Slack would, and go on with the modal as the app redraws it, answers kept."""
        view = self.driver.slack.views.get(form.view["id"], form.view)
        block = next((b for b in view.get("blocks", []) if b.get("block_id") == item.block_id), {})
        if not block.get("dispatch_action"):
            return form
        await self.driver.click(
            item.element["action_id"],
            user=self.user,
            view=view,
            block_id=item.block_id,
            action_type="static_select",
            selected=value,
        )
        redrawn = self.form
        if redrawn is None or redrawn is form or redrawn.view.get("id") != form.view.get("id"):
            return form
        redrawn.values.update(form.values)
        redrawn.index = form.index
        return redrawn

    async def _submit(self, form: ModalForm) -> None:
        self.form = None
        view = self.driver.slack.views.get(form.view["id"], form.view)
        reply = await self.driver.submit(form.values, user=self.user, view=view)
        answer = reply.content()
        action = answer.get("response_action") if isinstance(answer, dict) else None
        if reply.status >= 400:
            self.terminal.say(t(self.locale, "console.request_failed", status=reply.status), style=RED)
        elif action == "errors":
            self.terminal.show(render_errors(answer.get("errors") or {}, view))
            self.form = ModalForm(view, form.fields, values=form.values)
        elif action in ("update", "push") and isinstance(answer.get("view"), dict):
            if action == "update":
                self._drop(view["id"])
            self.screen.open_modal({**answer["view"], "id": answer["view"].get("id") or view["id"]})
        elif action == "clear":
            await self.close(by_user=False)
        else:
            self._drop(view["id"])
            self._uncover()

    def _drop(self, view_id: str) -> None:
        self.screen.drop_modal(view_id)
        if self.form is not None and self.form.view.get("id") == view_id:
            self.form = None

    def _uncover(self) -> None:
        """The modal below a closed one is the current one again."""
        below = self.screen.top_modal()
        if below is not None and below.view is not None:
            self.screen.show_view(below, updated=False)
            self._start(below.view)
