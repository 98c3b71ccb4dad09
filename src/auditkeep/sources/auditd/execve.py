"""One EXECVE record per event, its arguments whole.

The kernel writes the arguments of an ``execve`` in as many EXECVE records as they need
(about 7.5 KiB each): a long argument is cut into pieces ``a1[0]``, ``a1[1]``... announced
by ``a1_len``, and the pieces may sit in different records of the same event. Each record
alone holds only part of the command line; :func:`merge_execve` puts them back together, so
the event, ``argv`` and the detection rules see every argument whole. What the records do
not hold (a piece or an argument missing, when the kernel could not copy it) is reported,
never filled in.
"""

from __future__ import annotations

from auditkeep.sources.auditd.parser import AuditRecord, execve_argument


def merge_execve(records: list[AuditRecord]) -> tuple[list[AuditRecord], list[str]]:
    """``records`` with their EXECVE records merged into one (in the place of the first),
    and a note for each argument that is incomplete or missing."""
    execs = [r for r in records if r.type == "EXECVE"]
    if not execs or (len(execs) == 1 and not execs[0].execve_lens):
        return records, _missing(execs[0].fields, execs[0].execve_args) if execs else []
    first = execs[0]
    pieces: dict[int, dict[int, str]] = {}
    lens: dict[int, int] = {}
    fields: dict[str, str] = {}
    for r in execs:
        for k, v in r.fields.items():
            if k not in fields and not (r.execve_args and _is_argument(k)):
                fields[k] = v
        for n, parts in (r.execve_args or {}).items():
            pieces.setdefault(n, {}).update(parts)
        lens.update(r.execve_lens or {})
    notes: list[str] = []
    for n in sorted(pieces):
        text, size = execve_argument(pieces[n])
        fields["a" + str(n)] = text
        want = lens.get(n)
        if want is not None and size != want:
            notes.append(f"argv: a{n} has {size} of the {want} characters announced")
    notes += _missing(fields, pieces)
    merged = AuditRecord(
        "EXECVE",
        first.sec,
        first.frac,
        first.serial,
        first.node,
        fields,
        b"\n".join(r.raw.rstrip(b"\r\n") for r in execs),
        first.position,
        pieces,
        lens or None,
    )
    out = [merged if r is first else r for r in records if r.type != "EXECVE" or r is first]
    return out, notes


def _is_argument(key: str) -> bool:
    return key[:1] == "a" and key[1:].isdigit()


def _missing(fields: dict[str, str], pieces: dict[int, dict[int, str]] | None) -> list[str]:
    argc = fields.get("argc", "")
    if not argc.isdigit() or len(argc) > 9:
        return []
    have = pieces or {}
    absent = sum(1 for n in range(int(argc)) if n not in have)
    return [f"argv: {absent} of {argc} arguments missing"] if absent else []
