"""Checking personal fields against their commitments (see crypto/commit.py).

The plaintext and the per-subject salt are kept beside the leaf, where someone with write
access to the store can change them; the commitments are in the leaf, covered by every
proof. Recomputing each commitment from the stored plaintext and salt catches a changed
value. A field with no plaintext left was erased, which is not tampering: erasing is what
the commitments are for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from auditkeep.crypto.commit import HmacKey, commitment, event_key

SaltLoader = Callable[[list[str]], Mapping[str, bytes]]
_plain = msgspec.json.Decoder(dict[str, Any])
_CACHE_LIMIT = 200_000


class SealChecker:
    """Checks the personal fields of entries, with the salts of their subjects loaded in
    batches by ``load`` (and cached, subjects recur)."""

    def __init__(self, load: SaltLoader | None = None) -> None:
        self.load = load
        self._salts: dict[str, HmacKey | None] = {}
        self._checked = 0
        self._erased = 0

    def prepare(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Load the salts of the subjects of ``rows`` (key, id, received, leaf, subject,
        plaintext) that carry plaintext."""
        salts = self._salts
        wanted = {r[4] for r in rows if r[5] is not None and r[4] is not None and r[4] not in salts}
        if not wanted or self.load is None:
            return
        if len(salts) > _CACHE_LIMIT:
            salts.clear()
        got = self.load(sorted(wanted))
        for subject in wanted:
            raw = got.get(subject)
            salts[subject] = HmacKey(raw) if raw is not None else None

    def check(
        self, event_id: str, committed: Mapping[str, str] | None, subject: str | None, plain: bytes | None
    ) -> list[str]:
        """What is wrong with one entry's personal fields (nothing: an empty list)."""
        if committed is None:
            return ["personal-field plaintext is stored beside a leaf that commits none (added?)"]
        if plain is None:
            self._erased += len(committed)
            return []
        try:
            values = _plain.decode(plain)
        except msgspec.DecodeError:
            return ["the stored personal-field plaintext is not a JSON object (altered)"]
        salt = self._salts.get(subject) if subject is not None else None
        if salt is None:
            return [
                f"personal fields {', '.join(sorted(values))} have plaintext but no salt to check it against "
                "(salt removed?)"
            ]
        key = HmacKey(event_key(salt, event_id))
        bad: list[str] = []
        for path, value in values.items():
            expected = committed.get(path)
            if expected is None:
                bad.append(f"{path}: plaintext stored for a field the leaf does not commit (added?)")
                continue
            try:
                ok = commitment(key, path, value) == expected
            except (TypeError, ValueError, OverflowError):
                ok = False
            if ok:
                self._checked += 1
            else:
                bad.append(f"{path} differs from the value committed in the leaf (personal field altered)")
        if len(values) < len(committed):
            self._erased += sum(1 for path in committed if path not in values)
        return bad

    def take_checked(self) -> int:
        n, self._checked = self._checked, 0
        return n

    def take_erased(self) -> int:
        n, self._erased = self._erased, 0
        return n
