"""Every user-facing string, one catalogue per locale. Chinese is the default.

`t(locale, key, **params)` formats with `str.format`; a key missing in a locale falls back to Chinese.
Both catalogues must hold the same keys with the same placeholders (tests check it). The catalogues
live in `zh.py` and `en.py`, in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.i18n.en import EN
from bot.i18n.zh import ZH

CATALOGUES: dict[str, dict[str, str]] = {"zh": ZH, "en": EN}


@dataclass(frozen=True)
class Text:
    """A catalogue entry not yet rendered: a parameter of another message that must appear in
    whichever locale that message is rendered in."""

    key: str
    params: dict = field(default_factory=dict)

    def render(self, locale: str) -> str:
        return t(locale, self.key, **self.params)


def t(locale: str, key: str, **params: object) -> str:
    catalogue = CATALOGUES.get(locale, ZH)
    template = catalogue.get(key) or ZH[key]
    rendered = {k: v.render(locale) if isinstance(v, Text) else v for k, v in params.items()}
    return template.format(**rendered)
