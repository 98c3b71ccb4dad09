"""Opening an evidence bundle into parts an attacker would edit, and writing it back with a
manifest whose file hashes match again (so only the proofs can catch the edit)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any


@dataclass
class Row:
    index: int
    hash: str
    kind: str
    leaf: bytes | None  # the leaf bytes of full rows


@dataclass
class Parts:
    manifest: dict[str, Any]
    rows: list[Row]
    files: dict[str, bytes]  # every other member, as bytes

    @classmethod
    def read(cls, data: bytes) -> Parts:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            files = {n: zf.read(n) for n in zf.namelist()}
        manifest = json.loads(files.pop("manifest.json"))
        leaves = iter(files.pop("events.jsonl").splitlines())
        rows = []
        for line in files.pop("leaves.tsv").decode().splitlines():
            i, h, kind = line.split("\t")
            rows.append(Row(int(i), h, kind, next(leaves) if kind != "hashed" else None))
        return cls(manifest, rows, files)

    def write(self, *, fix_range: bool = True) -> bytes:
        files = dict(self.files)
        files["leaves.tsv"] = "".join(f"{r.index}\t{r.hash}\t{r.kind}\n" for r in self.rows).encode()
        files["events.jsonl"] = b"".join(r.leaf + b"\n" for r in self.rows if r.leaf is not None)
        m = dict(self.manifest)
        if fix_range and self.rows:
            m["range"] = {
                "first": self.rows[0].index,
                "end": self.rows[-1].index + 1,
                "events": sum(r.kind == "event" for r in self.rows),
                "hashed": sum(r.kind == "hashed" for r in self.rows),
            }
        m["files"] = {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            for n, b in files.items():
                zf.writestr(n, b)
            zf.writestr("manifest.json", json.dumps(m))
        return out.getvalue()

    def renumber(self) -> None:
        """Make the indices contiguous again from the first row's."""
        first = self.rows[0].index if self.rows else 0
        for n, r in enumerate(self.rows):
            r.index = first + n


def leaf_hash(leaf: bytes) -> str:
    return hashlib.sha256(b"\x00" + leaf).hexdigest()


def rehash(row: Row) -> None:
    assert row.leaf is not None
    row.hash = leaf_hash(row.leaf)
