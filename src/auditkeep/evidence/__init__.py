"""Evidence bundles for auditors: a window of a tenant's log with the proof that it is
complete and unaltered (docs/evidence.md)."""

from auditkeep.evidence.build import BundleSummary, build_bundle
from auditkeep.evidence.bundlecheck import BundleError, Result, verify_bundle

__all__ = ["BundleError", "BundleSummary", "Result", "build_bundle", "verify_bundle"]
