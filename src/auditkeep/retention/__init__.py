"""Data lifecycle: retention policies, legal holds and erasure, keeping every proof valid."""

from auditkeep.retention.holds import Hold, HoldBook, HoldError, new_hold
from auditkeep.retention.policy import Policy, PolicyError, load_policies, parse_duration
from auditkeep.retention.run import TenantPlan, plan_retention, run_retention

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
