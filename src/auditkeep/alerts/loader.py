"""Loading rule files and directories, and reloading a directory when its files change.

A file holds native rules (one rule per YAML document, a list of rules, or a mapping with
``rules:``), Sigma rules (documents with ``detection`` or ``correlation``), or both. A
malformed file or rule is reported with the file, the line and the reason; every other
rule still loads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditkeep.alerts.errors import RuleError
from auditkeep.alerts.rules import Rule, parse_rule
from auditkeep.alerts.sigma.rules import SigmaDoc, compile_sigma
from auditkeep.alerts.yamlsrc import line_of, load_documents

RULE_SUFFIXES = (".yml", ".yaml")


def _is_sigma(doc: Any) -> bool:
    return isinstance(doc, dict) and ("detection" in doc or "correlation" in doc)


def _split(text: str, file: str | None) -> tuple[list[tuple[Any, Any, Any]], list[SigmaDoc], list[RuleError]]:
    """(native rule candidates with their container and key, Sigma documents, errors)."""
    try:
        docs = load_documents(text)
    except RuleError as exc:
        return [], [], [exc.located(file)]
    native: list[tuple[Any, Any, Any]] = []
    sigma: list[SigmaDoc] = []
    errors: list[RuleError] = []
    for n, (doc, line) in enumerate(docs):
        if doc is None:
            continue
        if _is_sigma(doc):
            sigma.append(SigmaDoc(doc, file, line, n))
        elif isinstance(doc, dict) and "rules" in doc:
            extra = [k for k in doc if k != "rules"]
            if extra:
                errors.append(RuleError(f"unknown key {extra[0]!r} next to 'rules'", file=file, line=line_of(doc, extra[0])))
            items = doc["rules"]
            if not isinstance(items, list):
                errors.append(RuleError("'rules' must be a list of rules", file=file, line=line_of(doc, "rules")))
                continue
            native.extend((item, items, i) for i, item in enumerate(items))
        elif isinstance(doc, list):
            native.extend((item, doc, i) for i, item in enumerate(doc))
        elif isinstance(doc, dict):
            native.append((doc, None, None))
        else:
            errors.append(RuleError(f"a rule document must be a mapping or a list, got {type(doc).__name__}", file=file, line=line))
    return native, sigma, errors


def _parse_native(items: list[tuple[Any, Any, Any]], file: str | None) -> tuple[list[Rule], list[RuleError]]:
    rules: list[Rule] = []
    errors: list[RuleError] = []
    for item, container, key in items:
        try:
            rules.append(parse_rule(item, file=file))
        except RuleError as exc:
            if exc.line is None and container is not None:
                exc = RuleError(exc.reason, file=file, line=line_of(container, key), rule_id=exc.rule_id)
            errors.append(exc)
    return rules, errors


def _dedupe(rules: list[Rule], errors: list[RuleError]) -> list[Rule]:
    seen: dict[str, Rule] = {}
    out: list[Rule] = []
    for r in rules:
        first = seen.get(r.id)
        if first is not None:
            where = f"{first.file}:{first.line}" if first.file else f"line {first.line}"
            errors.append(RuleError(f"duplicate rule id (first defined at {where})", file=r.file, line=r.line, rule_id=r.id))
            continue
        seen[r.id] = r
        out.append(r)
    return out


def load_rules_text(text: str, file: str | None = None) -> tuple[list[Rule], list[RuleError]]:
    """Rules from YAML text (``file`` names it in errors)."""
    native, sigma, errors = _split(text, file)
    rules, errs = _parse_native(native, file)
    errors.extend(errs)
    srules, serrs = compile_sigma(sigma)
    errors.extend(serrs)
    return _dedupe(rules + srules, errors), errors


def load_rules_file(path: str | os.PathLike[str]) -> tuple[list[Rule], list[RuleError]]:
    """The rules of one file and the errors of the ones refused (never raises for content)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [RuleError(f"cannot read: {exc}", file=str(p))]
    return load_rules_text(text, str(p))


def rule_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The ``.yml``/``.yaml`` files under ``directory`` (recursively, hidden ones skipped),
    in a stable order."""
    root = Path(directory)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(RULE_SUFFIXES) and not name.startswith("."):
                out.append(Path(dirpath) / name)
    return out


def load_rules_dir(directory: str | os.PathLike[str]) -> tuple[list[Rule], list[RuleError]]:
    """Every rule under ``directory``. Sigma correlations may reference rules in other files
    of the directory; a rule id defined twice keeps its first definition."""
    return load_rules_paths(rule_files(directory))


def load_rules_paths(paths: Iterable[Path]) -> tuple[list[Rule], list[RuleError]]:
    rules: list[Rule] = []
    errors: list[RuleError] = []
    sigma: list[SigmaDoc] = []
    for p in paths:
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(RuleError(f"cannot read: {exc}", file=str(p)))
            continue
        native, sdocs, errs = _split(text, str(p))
        errors.extend(errs)
        nrules, nerrs = _parse_native(native, str(p))
        rules.extend(nrules)
        errors.extend(nerrs)
        sigma.extend(sdocs)
    srules, serrs = compile_sigma(sigma)
    errors.extend(serrs)
    return _dedupe(rules + srules, errors), errors


@dataclass
class ReloadResult:
    rules: list[Rule]
    errors: list[RuleError]
    changed: list[str] = field(default_factory=list)


class RulesWatcher:
    """Reloads a rule directory when a file is added, removed or modified (by polling
    modification times and sizes).

    Call :meth:`check` from the loop that drives the engine (the engine is not
    thread-safe); when something changed, the directory is reloaded and the result goes to
    ``engine.replace_rules`` and ``on_reload``. A file that no longer loads loses its rules
    — they are not kept in their last good version, because a rule someone is editing
    should not keep firing in a form nobody can see — and its errors are reported; rules of
    other files are unaffected (and keep their state, since their definitions did not
    change).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        engine: Any = None,
        on_reload: Callable[[ReloadResult], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.engine = engine
        self.on_reload = on_reload
        self._stamps: dict[str, tuple[int, int]] = {}
        self.last: ReloadResult | None = None

    def _scan(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for p in rule_files(self.directory):
            try:
                st = p.stat()
            except OSError:
                continue
            out[str(p)] = (st.st_mtime_ns, st.st_size)
        return out

    def check(self) -> ReloadResult | None:
        """Reload if anything changed since the last call (the first call always loads)."""
        stamps = self._scan()
        if self.last is not None and stamps == self._stamps:
            return None
        changed = sorted(k for k in stamps.keys() | self._stamps.keys() if stamps.get(k) != self._stamps.get(k))
        self._stamps = stamps
        rules, errors = load_rules_paths(Path(p) for p in sorted(stamps))
        result = ReloadResult(rules, errors, changed)
        self.last = result
        if self.engine is not None:
            self.engine.replace_rules(rules)
        if self.on_reload is not None:
            self.on_reload(result)
        return result
