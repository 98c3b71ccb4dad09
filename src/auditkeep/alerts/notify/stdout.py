"""Alerts on standard output: one JSON line each, or readable text."""

from __future__ import annotations

import sys
from typing import TextIO

import msgspec

from auditkeep.alerts.model import Alert
from auditkeep.alerts.notify.base import render_text


class StdoutNotifier:
    def __init__(self, name: str = "stdout", *, stream: TextIO | None = None, json: bool = True) -> None:
        self.name = name
        self.stream = stream
        self.json = json

    async def send(self, alert: Alert) -> None:
        out = self.stream or sys.stdout
        text = msgspec.json.encode(alert).decode() if self.json else render_text(alert) + "\n"
        out.write(text + ("\n" if self.json else ""))
        out.flush()
