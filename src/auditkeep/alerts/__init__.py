"""Alerts: rules (native and Sigma) evaluated over the committed log, and notifiers.

The engine is pure and driven by the caller::

    rules, errors = load_rules_dir("rules/")
    engine = Engine(rules)                    # or Engine.restore(rules, saved_state)
    for tenant, index, event in new_events:   # event = msgspec.to_builtins(Event)
        alerts = engine.process(tenant, index, event)
    alerts += engine.tick(time.time_ns())     # absence rules, end-of-window checks
    state = engine.snapshot()                 # store with the cursor, in one transaction
"""

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
