"""Data lifecycle: retention policies, legal holds and erasure, keeping every proof valid.

Its names are loaded on first use (``lazyload``): a process that needs one module of it
must not pay for the others (``config.py`` reads retention policies on every start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from auditkeep.lazyload import module_getattr

if TYPE_CHECKING:
    from auditkeep.retention.holds import Hold, HoldBook, HoldError, new_hold
    from auditkeep.retention.policy import Policy, PolicyError, load_policies, parse_duration
    from auditkeep.retention.run import TenantPlan, plan_retention, run_retention

_LAZY = {
    "Hold": "auditkeep.retention.holds",
    "HoldBook": "auditkeep.retention.holds",
    "HoldError": "auditkeep.retention.holds",
    "new_hold": "auditkeep.retention.holds",
    "Policy": "auditkeep.retention.policy",
    "PolicyError": "auditkeep.retention.policy",
    "load_policies": "auditkeep.retention.policy",
    "parse_duration": "auditkeep.retention.policy",
    "TenantPlan": "auditkeep.retention.run",
    "plan_retention": "auditkeep.retention.run",
    "run_retention": "auditkeep.retention.run",
}

__getattr__ = module_getattr(__name__, _LAZY)

__all__ = [
    "Hold",
    "HoldBook",
    "HoldError",
    "Policy",
    "PolicyError",
    "TenantPlan",
    "load_policies",
    "new_hold",
    "parse_duration",
    "plan_retention",
    "run_retention",
]
