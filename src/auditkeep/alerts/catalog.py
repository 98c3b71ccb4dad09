"""Where rules come from: the rules directory (for every tenant) and rule sets posted
through the API (for the tenant that posted them).

A body posted to the API is kept whole as a *rule set*, named by its first rule's id, in the
``alert_rules`` document collection; Sigma correlations therefore find the rules they
reference when those come in the same body. A rule file that no longer loads loses its
rules (see :class:`~auditkeep.alerts.loader.RulesWatcher`) and its errors are reported with
the file, the line and the reason; every other rule keeps running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import msgspec
import yaml

from auditkeep.alerts.errors import RuleError
from auditkeep.alerts.loader import RulesWatcher, load_rules_text
from auditkeep.alerts.rules import Rule
from auditkeep.errors import UserError
from auditkeep.ledger.ledger import NotFound
from auditkeep.model.timefmt import format_rfc3339
from auditkeep.store.base import Doc, Store

log = logging.getLogger(__name__)

RULES = "alert_rules"
#: Bumped when an API rule set is added or removed, so runners in other processes reload.
VERSION_META = "alerts.rules_version"
MAX_SETS = 1000  # rule sets per tenant


class RuleSetDoc(msgspec.Struct, kw_only=True):
    set_id: str
    tenant: str
    text: str
    rule_ids: list[str]
    created: str
    updated: str


class RuleInfo(msgspec.Struct, kw_only=True):
    """A loaded rule as listings show it."""

    id: str
    name: str
    kind: str
    severity: str
    enabled: bool
    source: str  # "file" or "api"
    file: str | None
    line: int | None
    rule_set: str | None
    notify: list[str]
    tags: list[str]
    description: str


class RuleSetError(UserError, ValueError):
    """A posted body holds no rule or a rule that does not load (HTTP 422)."""

    def __init__(self, message: str, errors: Iterable[RuleError] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


class RuleConflict(UserError):
    """A rule id is taken by another rule set or by a rule file (HTTP 409)."""


_doc = msgspec.json.Decoder(RuleSetDoc)
_encode = msgspec.json.Encoder()


class RuleCatalog:
    """Rules per tenant: the directory's (watched for changes) plus the tenant's API sets.

    Thread-safe. ``generation`` grows whenever a rule set or file changed, so a runner can
    cheaply tell whether to swap its engines' rules after :meth:`refresh`.
    """

    def __init__(self, store: Store, rules_dir: str | Path | None, max_bytes: int = 64 * 1024) -> None:
        self.store = store
        self.rules_dir = Path(rules_dir) if rules_dir else None
        self.max_bytes = max_bytes
        self.generation = 0
        self._watcher = RulesWatcher(self.rules_dir) if self.rules_dir is not None else None
        self._file_rules: list[Rule] = []
        self._file_errors: list[RuleError] = []
        self._api: dict[str, tuple[list[Rule], list[RuleError]]] = {}
        self._version: str | None = None
        self._lock = threading.RLock()
        self._loaded = False

    # -- loading -------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Reload what changed (files, API sets of any process); whether anything did."""
        with self._lock:
            changed = False
            if self._watcher is not None:
                if not self._loaded and self.rules_dir is not None and not self.rules_dir.is_dir():
                    log.warning("rules directory %s does not exist; no file rules loaded", self.rules_dir)
                result = self._watcher.check()
                if result is not None:
                    self._file_rules, self._file_errors = result.rules, result.errors
                    for e in result.errors:
                        log.warning("rule refused: %s", e.render())
                    if self._loaded:
                        log.info("rules reloaded (%s): %d rules, %d errors", ", ".join(result.changed) or "-", len(result.rules), len(result.errors))
                    changed = True
            version = self.store.meta(VERSION_META)
            if version != self._version:
                self._version = version
                self._api.clear()
                changed = True
            if changed:
                self.generation += 1
            self._loaded = True
            return changed

    def _ensure(self) -> None:
        if not self._loaded:
            self.refresh()

    @property
    def file_rules(self) -> list[Rule]:
        with self._lock:
            self._ensure()
            return list(self._file_rules)

    @property
    def file_errors(self) -> list[RuleError]:
        with self._lock:
            self._ensure()
            return list(self._file_errors)

    def _sets(self, tenant: str) -> list[RuleSetDoc]:
        docs = self.store.doc_list(RULES, tenant=tenant, limit=MAX_SETS)
        return sorted((_doc.decode(d.data) for d in docs), key=lambda s: s.set_id)

    def _api_rules(self, tenant: str) -> tuple[list[Rule], list[RuleError]]:
        hit = self._api.get(tenant)
        if hit is not None:
            return hit
        files = {r.id: r for r in self._file_rules}
        rules: list[Rule] = []
        errors: list[RuleError] = []
        seen: set[str] = set()
        for s in self._sets(tenant):
            got, errs = load_rules_text(s.text, f"api:{s.set_id}")
            errors.extend(errs)
            for r in got:
                first = files.get(r.id)
                if first is not None:
                    where = f"{first.file}:{first.line}" if first.file else "a rule file"
                    errors.append(RuleError(f"rule id also defined in {where}; the file's rule is used", file=r.file, line=r.line, rule_id=r.id))
                elif r.id in seen:
                    errors.append(RuleError("duplicate rule id", file=r.file, line=r.line, rule_id=r.id))
                else:
                    seen.add(r.id)
                    rules.append(r)
        self._api[tenant] = (rules, errors)
        return rules, errors

    def rules_for(self, tenant: str) -> list[Rule]:
        """The rules that run over ``tenant``'s log."""
        with self._lock:
            self._ensure()
            return [*self._file_rules, *self._api_rules(tenant)[0]]

    def errors_for(self, tenant: str) -> list[RuleError]:
        with self._lock:
            self._ensure()
            return [*self._file_errors, *self._api_rules(tenant)[1]]

    def describe(self, tenant: str) -> list[RuleInfo]:
        with self._lock:
            self._ensure()
            api = self._api_rules(tenant)[0]
            return [_info(r, "file") for r in self._file_rules] + [_info(r, "api") for r in api]

    # -- API rule sets ---------------------------------------------------------------------

    def put(self, tenant: str, body: bytes) -> tuple[str, bool, list[Rule]]:
        """Validate and keep a posted body (YAML or JSON). Returns (set id, whether it is new,
        its rules). A set posted again under the same first rule id replaces the old one."""
        if len(body) > self.max_bytes:
            raise RuleSetError(f"a rule body is at most {self.max_bytes} bytes")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise RuleSetError("the body is not UTF-8") from None
        if _has_alias(text):
            # an alias repeats a node by reference; nested ones blow up when expanded
            raise RuleSetError("YAML anchors and aliases are not accepted in a posted rule")
        rules, errors = load_rules_text(text, "body")
        if errors:
            raise RuleSetError(f"{len(errors)} error(s) in the rules", errors)
        if not rules:
            raise RuleSetError("the body holds no rule")
        set_id = rules[0].id
        with self._lock:
            self._ensure()
            files = {r.id: r for r in self._file_rules}
            for r in rules:
                first = files.get(r.id)
                if first is not None:
                    raise RuleConflict(f"rule id {r.id!r} is defined in {first.file}:{first.line}; change it there")
            existing = self._sets(tenant)
            for s in existing:
                if s.set_id == set_id:
                    continue
                taken = set(s.rule_ids) & {r.id for r in rules}
                if taken:
                    raise RuleConflict(f"rule id {sorted(taken)[0]!r} belongs to rule set {s.set_id!r}")
            old = next((s for s in existing if s.set_id == set_id), None)
            if old is None and len(existing) >= MAX_SETS:
                raise RuleConflict(f"a tenant may keep at most {MAX_SETS} rule sets")
            now = time.time_ns()
            at = format_rfc3339(now)
            doc = RuleSetDoc(set_id=set_id, tenant=tenant, text=text, rule_ids=[r.id for r in rules], created=old.created if old else at, updated=at)
            self.store.doc_put(Doc(RULES, _doc_id(tenant, set_id), tenant, now, "active", _encode.encode(doc)))
            self._bump()
        return set_id, old is None, rules

    def delete(self, tenant: str, rule_id: str) -> list[str]:
        """Remove the API rule set holding ``rule_id``; the ids of the rules removed."""
        with self._lock:
            self._ensure()
            for s in self._sets(tenant):
                if rule_id == s.set_id or rule_id in s.rule_ids:
                    self.store.doc_delete(RULES, _doc_id(tenant, s.set_id))
                    self._bump()
                    return list(s.rule_ids)
            for r in self._file_rules:
                if r.id == rule_id:
                    raise RuleConflict(f"rule {rule_id!r} is defined in {r.file}:{r.line}; remove it there")
        raise NotFound(f"no rule {rule_id!r} was posted for this tenant")

    def _bump(self) -> None:
        self.store.set_meta(VERSION_META, str(time.time_ns()))
        self.refresh()


def _has_alias(text: str) -> bool:
    try:
        return any(isinstance(tok, yaml.AliasToken) for tok in yaml.scan(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return False  # not YAML at all: the loader reports it with its line


def _doc_id(tenant: str, set_id: str) -> str:
    return f"{tenant}/{set_id}"


def _info(r: Rule, source: str) -> RuleInfo:
    return RuleInfo(
        id=r.id,
        name=r.name,
        kind=r.kind,
        severity=r.severity,
        enabled=r.enabled,
        source=source,
        file=r.file if source == "file" else None,
        line=r.line if source == "file" else None,
        rule_set=r.file[4:] if source == "api" and r.file and r.file.startswith("api:") else None,
        notify=list(r.notify),
        tags=list(r.tags),
        description=r.description,
    )
