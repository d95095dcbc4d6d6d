"""What the console asks and how it reads the answers: the questions of a modal (one per select,
text input or checkbox option), their defaults and prompts, a whole modal in one line
(`env=staging branch=main skip_build=yes`), a select's option by number, value or label, and yes/no.
Pure: the modal flow that sends the answers to the bot is modals.py.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from bot.console.render import option_label
from bot.i18n import t

ASSIGNMENT = re.compile(r"^[A-Za-z_][\w.-]*=")
YES = frozenset({"y", "yes", "true", "1", "on", "是", "确认"})
NO = frozenset({"n", "no", "false", "0", "off", "否", "取消"})


class ConsoleInputError(Exception):
    """A line the console could not understand (counted: the exit status is non-zero)."""


@dataclass
class FormField:
    """One question of a modal: a select, a text input, or one checkbox option."""

    block_id: str
    kind: str
    label: str
    element: dict
    option: dict | None = None  # for one checkbox option


@dataclass
class ModalForm:
    """A modal being filled in: its questions, the one asked now, and the answers so far
    (block_id -> option value, text, or list of checked option values)."""

    view: dict
    fields: list[FormField]
    index: int = 0
    values: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, view: dict) -> ModalForm | None:
        """The form of `view`, if it asks anything and can be submitted."""
        fields = _form_fields(view)
        return cls(view, fields) if fields and view.get("submit") else None

    @property
    def current(self) -> FormField | None:
        return self.fields[self.index] if self.index < len(self.fields) else None

    def hint(self) -> str:
        """The whole form in one line, as an example to type."""
        return " ".join(_example(f) for f in self.fields)

    def checked(self, item: FormField) -> list[str]:
        """The checked options of a checkboxes field: as answered, else as the modal shows them."""
        chosen = self.values.get(item.block_id)
        return [o["value"] for o in item.element.get("initial_options", [])] if chosen is None else chosen

    def default(self, item: FormField) -> str:
        if item.kind == "checkbox":
            return "y" if item.option and item.option["value"] in self.checked(item) else "n"
        if item.block_id in self.values:
            return str(self.values[item.block_id] or "")
        if item.kind == "static_select":
            return (item.element.get("initial_option") or {}).get("value", "")
        return item.element.get("initial_value") or ""

    def prompt(self, item: FormField, locale: str) -> str:
        default = self.default(item)
        if item.kind == "checkbox":
            return t(locale, "console.prompt_checkbox", label=item.label, default=default)
        if item.kind == "static_select":
            choices = " | ".join(f"{i}) {o['value']}" for i, o in enumerate(options(item.element), 1))
            return t(locale, "console.prompt_select", label=item.label, default=default, choices=choices)
        return t(locale, "console.prompt_text", label=item.label, default=default)

    def answer(self, item: FormField, text: str, locale: str) -> None:
        """The answer to one question, typed at its prompt."""
        if item.kind == "static_select":
            self.values[item.block_id] = pick_option(item.element, text, locale)
        elif item.kind == "checkbox":
            assert item.option is not None
            chosen = [v for v in self.checked(item) if v != item.option["value"]]
            if yes_no(text, locale):
                chosen.append(item.option["value"])
            self.values[item.block_id] = chosen
        else:
            self.values[item.block_id] = text

    def assignments(self, text: str, locale: str) -> dict[str, Any]:
        """`env=staging branch=main skip_build=yes description="two words"` as modal values."""
        values: dict[str, Any] = {}
        for token in _split(text):
            key, _, raw = token.partition("=")
            item = self._find(key)
            if item is None:
                names = ", ".join(dict.fromkeys(_field_name(f) for f in self.fields))
                raise ConsoleInputError(t(locale, "console.unknown_field", name=key[:40], fields=names))
            if item.kind == "checkbox" and item.option is not None and key == item.option["value"]:
                chosen = values.get(item.block_id, self.values.get(item.block_id))
                if chosen is None:
                    chosen = [o["value"] for o in item.element.get("initial_options", [])]
                chosen = [v for v in chosen if v != key]
                if yes_no(raw, locale):
                    chosen.append(key)
                values[item.block_id] = chosen
            elif item.kind == "checkbox":
                picked = [p for p in raw.split(",") if p]
                values[item.block_id] = [pick_option(item.element, p, locale) for p in picked]
            elif item.kind == "static_select":
                values[item.block_id] = pick_option(item.element, raw, locale)
            else:
                values[item.block_id] = raw
        return values

    def _find(self, key: str) -> FormField | None:
        """A checkbox option by its value first, then a field by block_id or action_id."""
        for item in self.fields:
            if item.option is not None and key == item.option["value"]:
                return item
        for item in self.fields:
            if key in (item.block_id, item.element.get("action_id")):
                return item
        return None


def is_assignments(text: str) -> bool:
    """Whether the line fills the modal in one go (`key=value …`) rather than answers one question."""
    return bool(text) and all(ASSIGNMENT.match(token) for token in _split(text))


def options(element: dict) -> list[dict]:
    found = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        found.extend(group.get("options") or [])
    return found


def choices(element: dict) -> list[str]:
    """A select's options as numbered lines."""
    return [f"{i}) {o['value']} = {option_label(o)}" for i, o in enumerate(options(element), 1)]


def pick_option(element: dict, answer: str, locale: str) -> str:
    """The option value meant by `answer`: its number, its value or its label."""
    found = options(element)
    answer = answer.strip()
    if answer.isdigit() and 1 <= int(answer) <= len(found):
        return found[int(answer) - 1]["value"]
    for option in found:
        if answer.lower() in (option["value"].lower(), option_label(option).lower()):
            return option["value"]
    listed = ", ".join(o["value"] for o in found)
    raise ConsoleInputError(t(locale, "console.bad_choice", value=answer[:40], choices=listed))


def yes_no(text: str, locale: str) -> bool:
    word = text.strip().lower()
    if word in YES:
        return True
    if word in NO:
        return False
    raise ConsoleInputError(t(locale, "console.bad_yes_no"))


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def _form_fields(view: dict) -> list[FormField]:
    fields: list[FormField] = []
    for block in view.get("blocks") or []:
        if block.get("type") != "input":
            continue
        element = block.get("element") or {}
        label = option_label({"text": block.get("label")})
        kind = element.get("type", "")
        if kind == "checkboxes":
            for option in element.get("options") or []:
                fields.append(FormField(block["block_id"], "checkbox", option_label(option), element, option))
        elif kind in ("static_select", "plain_text_input"):
            fields.append(FormField(block["block_id"], kind, label, element))
    return fields


def _field_name(item: FormField) -> str:
    return item.option["value"] if item.option else item.block_id


def _example(item: FormField) -> str:
    if item.kind == "checkbox" and item.option is not None:
        return f"{item.option['value']}=yes"
    if item.kind == "static_select":
        found = options(item.element)
        return f"{item.block_id}={found[-1]['value'] if found else ''}"
    return f'{item.block_id}="…"'
