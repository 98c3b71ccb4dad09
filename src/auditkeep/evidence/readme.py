"""The README.txt inside a bundle: what it holds and how an auditor checks it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from auditkeep.evidence.build import BundleSummary


def readme_text(s: BundleSummary, origin: str, filters: dict[str, Any], reveal_subject: str | None) -> str:
    scope = (
        "Only the events matching these filters are included in full: "
        + ", ".join(f"{k}={v}" for k, v in sorted(filters.items()))
        + ". The other entries of the window appear as leaf hashes only (in leaves.tsv), so the\n"
        "bundle still proves that no entry of the window is missing; that those entries do not\n"
        "match the filters is the issuer's statement, checkable by asking for them: their hashes\n"
        "are fixed by the signed checkpoint.\n"
        if filters
        else "Every event of the window is included in full.\n"
    )
    personal = (
        f"Personal fields of subject {reveal_subject!r} are revealed in reveal.jsonl, each with the\n"
        "per-event key that checks them against the commitments in the leaf.\n"
        if reveal_subject is not None
        else "Personal fields (such as names and IP addresses) are not included: each leaf holds only a\n"
        "salted commitment to them under \"sealed\".\n"
    )
    end = (
        f"The window had not ended when the log held {s.checkpoint_size} entries: the bundle is complete\n"
        "up to that checkpoint.\n"
        if s.open_end
        else ""
    )
    return f"""auditkeep evidence bundle
=========================

Log:     {origin}
Tenant:  {s.tenant}
Window:  received from {s.since} (inclusive) to {s.until} (exclusive)
Entries: indices {s.first} to {s.end - 1} of the log; {s.events} event(s) in full, {s.hashed} as hashes only
Signed:  checkpoint at {s.checkpoint_size} entries, consistent with the newest at {s.latest_size}

{scope}{personal}{end}
What proves what
----------------
- events.jsonl holds the exact bytes of each leaf (RFC 8785 canonical JSON), one per line;
  leaves.tsv lists every index of the range with its RFC 9162 leaf hash
  SHA-256(0x00 || leaf bytes) and its kind: before / event / hashed / after.
- The entries marked "before" and "after" lie just outside the window (received_at never
  decreases within a log), so no event of the window can have been left out at either end.
- proof.json holds the hashes that, with the range's leaf hashes, recompute the root of the
  signed checkpoint (checkpoint.txt, a C2SP signed note), and a consistency proof from it to
  the newest checkpoint (latest-checkpoint.txt).
- keys.txt lists the verifier keys the log records. Do not trust them from here: obtain the
  key from the log's operator by another channel and compare.
- manifest.json lists every file with its SHA-256; report.html is a printable summary.

How to check it
---------------
With auditkeep:          auditkeep verify-bundle THIS.zip --key VKEY [--witness VKEY]
With Python alone:       pip install cryptography
                         python verify_bundle.py THIS.zip --key VKEY
(verify_bundle.py and the tlogcheck.py it imports are examples/verify_bundle.py and
examples/tlogcheck.py in the auditkeep sources: copy both into one directory. The format
is documented in docs/evidence.md so that anyone can write their own verifier.)
"""
