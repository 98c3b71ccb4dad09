"""Evidence bundles for auditors: a window of a tenant's log with the proof that it is
complete and unaltered (docs/evidence.md).

Its names are loaded on first use (``lazyload``): the archive's offline check needs
``tlogcheck`` alone, not the bundle builder (and Jinja2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from auditkeep.lazyload import module_getattr

if TYPE_CHECKING:
    from auditkeep.evidence.build import BundleSummary, build_bundle
    from auditkeep.evidence.bundlecheck import BundleError, Result, verify_bundle

_LAZY = {
    "BundleSummary": "auditkeep.evidence.build",
    "build_bundle": "auditkeep.evidence.build",
    "BundleError": "auditkeep.evidence.bundlecheck",
    "Result": "auditkeep.evidence.bundlecheck",
    "verify_bundle": "auditkeep.evidence.bundlecheck",
}

__getattr__ = module_getattr(__name__, _LAZY)

__all__ = ["BundleError", "BundleSummary", "Result", "build_bundle", "verify_bundle"]
