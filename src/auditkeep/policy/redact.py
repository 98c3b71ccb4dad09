"""Redaction: drop or mask configured fields, and replace secrets found in any string.

A :class:`Redactor` is a processor (``(event, source) -> event``). It changes the event in
place and lists every path it changed, sorted and unique, under ``metadata._redacted``.
Running it again changes nothing. The configuration is documented in ``docs/policy.md``.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from auditkeep.model import Event
from auditkeep.policy import detectors as det
from auditkeep.policy.types import BOOKKEEPING_KEYS, REDACTED_KEY, PolicyError

MASK = "[REDACTED:masked]"
_PREFIX = "[REDACTED:"

# Top-level fields scanned for secrets; ids, times, enums and actions have fixed forms.
TEXT_FIELDS: tuple[str, ...] = (
    "actor.id",
    "actor.name",
    "actor.user_agent",
    "actor.session_id",
    "resource.type",
    "resource.id",
    "resource.name",
    "reason",
    "source.service",
    "source.host",
    "source.request_id",
    "source.trace_id",
)
DEFAULT_EXEMPT: tuple[str, ...] = ("actor.id", "actor.name")
"""Who acted is the point of an audit event: an e-mail address there is kept."""
_REQUIRED = frozenset({"actor.id", "action", "id", "time", "tenant", "received_at", "sealed"})
_STRUCTS = frozenset({"actor", "resource", "source"})


@dataclass(frozen=True, slots=True)
class FieldRule:
    """Drop or mask the value at ``path`` (dotted; ``*`` stands for any one key)."""

    path: str
    action: Literal["drop", "mask"]
    keep_last: int = 0  # mask: keep this many trailing characters as a hint

    def __post_init__(self) -> None:
        parts = self.path.split(".")
        if not self.path or any(not p for p in parts):
            raise PolicyError(
                self.path, "a field path is dotted names, e.g. metadata.request.headers.cookie"
            )
        if self.action not in ("drop", "mask"):
            raise PolicyError(self.path, f"action must be drop or mask, not {self.action!r}")
        if parts[0] not in ("metadata", *_STRUCTS) and self.path not in ("reason",):
            raise PolicyError(
                self.path,
                "only metadata.*, actor.*, resource.*, source.* and reason can be redacted",
            )
        if self.path in _REQUIRED and self.action == "drop":
            raise PolicyError(self.path, "required field: it can be masked, not dropped")
        if self.path == "action":
            raise PolicyError(self.path, "the action cannot be redacted")
        if self.keep_last < 0 or self.keep_last > 8:
            raise PolicyError(self.path, "keep_last is between 0 and 8")


def mask_value(value: Any, keep_last: int = 0) -> Any:
    """The masked form of ``value``: a placeholder, with a short tail as a hint if asked."""
    if isinstance(value, str) and value.startswith(_PREFIX):
        return value  # already masked or redacted
    if keep_last and isinstance(value, str | int) and not isinstance(value, bool):
        text = str(value)
        if len(text) > 2 * keep_last:
            return f"{MASK}…{text[-keep_last:]}"
    return MASK


def mask_ip(ip: str) -> str:
    """An IP address with its host part zeroed (IPv4 /24, IPv6 /48): still an address."""
    addr = ipaddress.ip_address(ip)
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False).network_address)


class Redactor:
    """Field rules, then secret detectors over every string (metadata included)."""

    def __init__(
        self,
        fields: Sequence[FieldRule] = (),
        *,
        detectors: Iterable[str] | None = None,
        exempt: Iterable[str] = DEFAULT_EXEMPT,
        secret_keys: bool = True,
    ) -> None:
        self.fields = tuple(fields)
        try:
            self.detectors = det.select(detectors)
        except ValueError as exc:
            raise PolicyError("redaction.detectors", str(exc)) from None
        self.scanner = det.Scanner(self.detectors)
        self.exempt = frozenset(exempt)
        self.secret_keys = secret_keys
        # The top-level fields to search, by the part of the event holding them ("" is
        # the event itself).
        groups: dict[str, list[str]] = {}
        for f in TEXT_FIELDS:
            if f not in self.exempt:
                group, _, name = f.rpartition(".")
                groups.setdefault(group, []).append(name)
        self._groups = tuple((g, tuple(names)) for g, names in groups.items())

    def redact_text(self, text: str) -> str:
        """Free text (a quarantined body, a refusal reason) with every secret the detectors find
        replaced by its placeholder."""
        return self.scanner.redact(text) if self.detectors else text

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> Redactor:
        """From the ``redaction`` mapping of a policy file."""
        if not isinstance(config, Mapping):
            raise PolicyError("redaction", "expected a mapping")
        unknown = set(config) - {"fields", "detectors", "exempt", "secret_keys"}
        if unknown:
            raise PolicyError("redaction", f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        rules: list[FieldRule] = []
        for i, spec in enumerate(config.get("fields") or []):
            where = f"redaction.fields[{i}]"
            if not isinstance(spec, Mapping) or set(spec) - {"path", "action", "keep_last"}:
                raise PolicyError(
                    where, "expected path, action (drop or mask) and optional keep_last"
                )
            try:
                rules.append(
                    FieldRule(
                        str(spec.get("path", "")),
                        spec.get("action", "mask"),
                        int(spec.get("keep_last", 0)),
                    )
                )
            except PolicyError as exc:
                raise PolicyError(where, f"{exc.where}: {exc.message}") from None
            except (TypeError, ValueError):
                raise PolicyError(where, "keep_last must be a number") from None
        names = config.get("detectors")
        if names is not None and not (
            isinstance(names, list) and all(isinstance(n, str) for n in names)
        ):
            raise PolicyError("redaction.detectors", "expected a list of detector names")
        exempt = config.get("exempt", list(DEFAULT_EXEMPT))
        if not isinstance(exempt, list) or not all(isinstance(e, str) for e in exempt):
            raise PolicyError("redaction.exempt", "expected a list of field paths")
        return cls(
            rules, detectors=names, exempt=exempt, secret_keys=bool(config.get("secret_keys", True))
        )

    # -- use

    def __call__(self, event: Event, source: str = "") -> Event:
        self.redact_many((event,))
        return event

    def redact_many(self, events: Sequence[Event]) -> None:
        """Redact each of ``events`` in place, exactly as calling the redactor on each would.
        The detectors' triggers are searched once over the strings of the whole batch: a
        search per event cost more than the rest of the redaction together."""
        changes: list[set[str]] = []
        slots: list[tuple[Any, Any, str]] = []
        texts: list[str] = []
        ends: list[int] = []  # ends[n]: where the texts of event n + 1 start
        for event in events:
            changed: set[str] = set()
            for rule in self.fields:
                self._apply_field(event, rule, changed)
            self._gather(event, slots, texts, changed)
            changes.append(changed)
            ends.append(len(texts))
        if self.detectors and texts:
            self._detect(slots, texts, ends, changes)
        for event, changed in zip(events, changes, strict=True):
            if changed:
                meta = event.metadata
                if meta is None:
                    meta = event.metadata = {}
                prior = meta.get(REDACTED_KEY)
                if isinstance(prior, list):
                    changed.update(p for p in prior if isinstance(p, str))
                meta[REDACTED_KEY] = sorted(changed)

    redact = __call__

    # -- fields

    def _apply_field(self, event: Event, rule: FieldRule, changed: set[str]) -> None:
        head, _, rest = rule.path.partition(".")
        if head in _STRUCTS or head == "reason":
            self._apply_top(event, rule, changed)
            return
        if event.metadata is None:
            return
        for parent, key, path in _expand(event.metadata, rest.split("."), "metadata"):
            if rule.action == "drop":
                del parent[key]
                changed.add(path)
            else:
                new = mask_value(parent[key], rule.keep_last)
                if new != parent[key]:
                    parent[key] = new
                    changed.add(path)

    def _apply_top(self, event: Event, rule: FieldRule, changed: set[str]) -> None:
        if rule.path == "reason":
            owner: Any = event
            name = "reason"
        else:
            head, _, name = rule.path.partition(".")
            owner = getattr(event, head)
            if owner is None or name not in owner.__struct_fields__:
                return
        value = getattr(owner, name)
        if value is None:
            return
        if rule.action == "drop":
            setattr(owner, name, None)
            changed.add(rule.path)
            return
        if rule.path == "actor.ip":
            try:
                new = mask_ip(value)
            except ValueError:  # not an address: validation refuses it anyway; hide it
                new = None
        else:
            new = mask_value(value, rule.keep_last)
        if new != value:
            setattr(owner, name, new)
            changed.add(rule.path)

    # -- detectors

    def _gather(
        self, event: Event, slots: list[tuple[Any, Any, str]], texts: list[str], changed: set[str]
    ) -> None:
        """Every string of ``event`` worth searching, with where it lives (values of
        secret-named keys are replaced on the way)."""
        for group, names in self._groups:
            owner: Any = event if group == "" else getattr(event, group)
            if owner is None:
                continue
            for attr in names:
                value = getattr(owner, attr)
                if value and type(value) is str and not value.startswith(_PREFIX):
                    slots.append((owner, attr, group))
                    texts.append(value)
        if event.metadata:
            self._collect(event.metadata, slots, texts, self.secret_keys, changed)

    def _detect(
        self, slots: list[tuple[Any, Any, str]], texts: list[str], ends: list[int], changes: list[set[str]]
    ) -> None:
        """Find the triggers of all detectors in one pass over all ``texts``; only strings
        holding a trigger are searched, and a change is listed for the event holding it."""
        redact = self.scanner.redact
        for i, dets in self.scanner.candidates(texts).items():
            owner, attr, parent = slots[i]
            new = redact(texts[i], dets)
            if new == texts[i]:
                continue
            changed = changes[bisect.bisect_right(ends, i)]
            if type(owner) is dict:
                owner[attr] = new
                changed.add(f"{parent}.{attr}")
            elif type(owner) is list:
                owner[attr] = new
                changed.add(f"{parent}[{attr}]")
            else:
                setattr(owner, attr, new)
                changed.add(f"{parent}.{attr}" if parent else attr)

    def _collect(
        self,
        root: dict[str, Any],
        slots: list[tuple[Any, Any, str]],
        texts: list[str],
        keys: bool,
        changed: set[str],
    ) -> None:
        """Gather the strings under metadata as (container, key, container path); values
        of secret-named keys are replaced on the way. Iterative: events nest a little,
        and a loop costs less than a call per container."""
        add_slot = slots.append
        add_text = texts.append
        stack: list[tuple[Any, str]] = []
        for k, v in root.items():
            if k in BOOKKEEPING_KEYS:
                continue
            tv = type(v)
            if tv is str:
                if v and not v.startswith(_PREFIX):
                    if keys and type(k) is str and _is_secret_key(k):
                        root[k] = det.PLACEHOLDER.format(_key_kind(k))
                        changed.add(f"metadata.{k}")
                    else:
                        add_slot((root, k, "metadata"))
                        add_text(v)
            elif tv is dict or tv is list:
                stack.append((v, f"metadata.{k}"))
        known = _SECRET_KEYS
        while stack:
            node, path = stack.pop()
            if type(node) is dict:
                for k, v in node.items():
                    tv = type(v)
                    if tv is str:
                        if keys:
                            secret = known.get(k)
                            if secret is None:
                                secret = type(k) is str and _is_secret_key(k)
                            if secret:
                                if not v.startswith(_PREFIX):
                                    node[k] = det.PLACEHOLDER.format(_key_kind(k))
                                    changed.add(f"{path}.{k}")
                                continue
                        if v:
                            # Placeholders are gathered too: no trigger of theirs matches.
                            add_slot((node, k, path))
                            add_text(v)
                    elif tv is dict or tv is list:
                        stack.append((v, f"{path}.{k}"))
            else:
                for i, v in enumerate(node):
                    tv = type(v)
                    if tv is str:
                        if v:
                            add_slot((node, i, path))
                            add_text(v)
                    elif tv is dict or tv is list:
                        stack.append((v, f"{path}[{i}]"))


_SECRET_KEYS: dict[str, bool] = {}


def _is_secret_key(key: str) -> bool:
    """Whether ``key`` names a secret; remembered, since metadata keys recur."""
    got = _SECRET_KEYS.get(key)
    if got is None:
        if len(_SECRET_KEYS) > 16384:
            _SECRET_KEYS.clear()
        got = _SECRET_KEYS[key] = det.SECRET_KEY.match(key) is not None
    return got


def _key_kind(key: str) -> str:
    low = key.lower()
    return "password" if ("pass" in low or "pwd" in low) else "secret"


def _expand(node: Any, parts: list[str], prefix: str) -> Iterable[tuple[dict[str, Any], str, str]]:
    """(parent dict, key, path) for every value ``parts`` reaches (``*``: any key)."""
    if not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    keys = list(node) if head == "*" else ([head] if head in node else [])
    for k in keys:
        here = f"{prefix}.{k}"
        if rest:
            yield from _expand(node[k], rest, here)
        else:
            yield node, k, here
