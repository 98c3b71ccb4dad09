"""Alerts: rules (native and Sigma) evaluated over the committed log, and notifiers.

The engine is pure and driven by the caller::

    rules, errors = load_rules_dir("rules/")
    engine = Engine(rules)                    # or Engine.restore(rules, saved_state)
    for tenant, index, event in new_events:   # event = msgspec.to_builtins(Event)
        alerts = engine.process(tenant, index, event)
    alerts += engine.tick(time.time_ns())     # absence rules, end-of-window checks
    state = engine.snapshot()                 # store with the cursor, in one transaction

Its names are loaded on first use (``lazyload``): the gateways' guardrails need the
errors and conditions, not the engine, Sigma and the anomaly detectors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from auditkeep.lazyload import module_getattr

if TYPE_CHECKING:
    from auditkeep.alerts.anomaly import DETECTORS, AnomalySpec
    from auditkeep.alerts.conditions import Condition, IndexHint, compile_condition
    from auditkeep.alerts.engine import SOURCE_KINDS, Engine, EngineStats
    from auditkeep.alerts.errors import RuleError
    from auditkeep.alerts.loader import (
        ReloadResult,
        RulesWatcher,
        load_rules_dir,
        load_rules_file,
        load_rules_text,
    )
    from auditkeep.alerts.model import SEVERITIES, Alert, alert_id
    from auditkeep.alerts.rules import KINDS, Rule, parse_rule
    from auditkeep.alerts.sigma.rules import SigmaDoc, compile_sigma

_LAZY = {
    "DETECTORS": "auditkeep.alerts.anomaly",
    "AnomalySpec": "auditkeep.alerts.anomaly",
    "Condition": "auditkeep.alerts.conditions",
    "IndexHint": "auditkeep.alerts.conditions",
    "compile_condition": "auditkeep.alerts.conditions",
    "SOURCE_KINDS": "auditkeep.alerts.engine",
    "Engine": "auditkeep.alerts.engine",
    "EngineStats": "auditkeep.alerts.engine",
    "RuleError": "auditkeep.alerts.errors",
    "ReloadResult": "auditkeep.alerts.loader",
    "RulesWatcher": "auditkeep.alerts.loader",
    "load_rules_dir": "auditkeep.alerts.loader",
    "load_rules_file": "auditkeep.alerts.loader",
    "load_rules_text": "auditkeep.alerts.loader",
    "SEVERITIES": "auditkeep.alerts.model",
    "Alert": "auditkeep.alerts.model",
    "alert_id": "auditkeep.alerts.model",
    "KINDS": "auditkeep.alerts.rules",
    "Rule": "auditkeep.alerts.rules",
    "parse_rule": "auditkeep.alerts.rules",
    "SigmaDoc": "auditkeep.alerts.sigma.rules",
    "compile_sigma": "auditkeep.alerts.sigma.rules",
}

__getattr__ = module_getattr(__name__, _LAZY)

__all__ = [
    "DETECTORS",
    "KINDS",
    "SEVERITIES",
    "SOURCE_KINDS",
    "Alert",
    "AnomalySpec",
    "Condition",
    "Engine",
    "EngineStats",
    "IndexHint",
    "ReloadResult",
    "Rule",
    "RuleError",
    "RulesWatcher",
    "SigmaDoc",
    "alert_id",
    "compile_condition",
    "compile_sigma",
    "load_rules_dir",
    "load_rules_file",
    "load_rules_text",
    "parse_rule",
]
