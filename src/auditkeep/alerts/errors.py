"""Errors of rule files and rule definitions: each names the file, the line and the reason."""

from __future__ import annotations

from auditkeep.errors import UserError


class RuleError(UserError, ValueError):
    """A rule (or a whole file) was refused.

    ``file`` and ``line`` point at the offending place when known (line numbers are
    1-based, from the YAML node marks); ``rule_id`` names the rule when it got that far.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        line: int | None = None,
        rule_id: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.rule_id = rule_id
        super().__init__(self.render())

    def render(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        elif self.line:
            where = f"line {self.line}: "
        rule = f"rule {self.rule_id!r}: " if self.rule_id else ""
        return f"{where}{rule}{self.reason}"

    def located(self, file: str | None = None, rule_id: str | None = None) -> RuleError:
        """The same error with the file and rule filled in where missing."""
        return RuleError(
            self.reason,
            file=self.file or file,
            line=self.line,
            rule_id=self.rule_id or rule_id,
        )

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "rule_id": self.rule_id, "reason": self.reason}
