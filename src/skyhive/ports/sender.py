"""The sender port: one notification channel's way out (``adapters/apprise_sender.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

MessageKind = Literal["info", "success", "warning", "failure"]


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str
    kind: MessageKind


class Sender(Protocol):
    display: str  # the channel's URL with its secrets masked
    valid: bool  # False: it can never send

    def send(self, msg: Message) -> str | None:
        """None once sent, else why not (secrets masked)."""

    def scrub(self, text: str) -> str:
        """``text`` with the channel's secrets masked."""
