"""What is captured and what is hidden, before anything is hashed.

:class:`CapturePolicy` decides per event (drop it, drop its bodies, keep it);
:class:`Redactor` drops or masks configured fields and replaces secrets found in text;
:class:`Pipeline` runs them in order. :func:`fit_metadata` keeps a source's native record
within the event limits.
"""

from auditkeep.policy.capture import DEFAULT_BODY_PATHS, CapturePolicy, Decision, Glob
from auditkeep.policy.detectors import BUILTIN as BUILTIN_DETECTORS
from auditkeep.policy.detectors import Detector, Scanner, luhn_valid
from auditkeep.policy.limits import TooLarge, bounded_decoder, bounded_type, fit_metadata
from auditkeep.policy.pipeline import Pipeline
from auditkeep.policy.redact import FieldRule, Redactor, mask_ip, mask_value
from auditkeep.policy.types import LEVELS, Level, PolicyError, Processor

__all__ = [
    "BUILTIN_DETECTORS",
    "DEFAULT_BODY_PATHS",
    "LEVELS",
    "CapturePolicy",
    "Decision",
    "Detector",
    "FieldRule",
    "Glob",
    "Level",
    "Pipeline",
    "PolicyError",
    "Processor",
    "Redactor",
    "Scanner",
    "TooLarge",
    "bounded_decoder",
    "bounded_type",
    "fit_metadata",
    "luhn_valid",
    "mask_ip",
    "mask_value",
]
