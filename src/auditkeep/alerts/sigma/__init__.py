"""Sigma rules: detection rules, correlation rules and their mapping onto auditkeep events."""

from auditkeep.alerts.sigma.condition import parse_condition
from auditkeep.alerts.sigma.logsource import resolve_logsource
from auditkeep.alerts.sigma.rules import SigmaDoc, compile_sigma

__all__ = ["SigmaDoc", "compile_sigma", "parse_condition", "resolve_logsource"]
