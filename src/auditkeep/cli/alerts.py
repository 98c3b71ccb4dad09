"""``auditkeep alerts`` (the runner, the lifecycle, dead letters) and ``auditkeep rules``
(list, check, test over a file, backtest over stored history)."""

from __future__ import annotations

import getpass
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click
import msgspec
from rich.markup import escape
from rich.text import Text

from auditkeep.cli.common import (
    err,
    global_options,
    interactive,
    ledger,
    out,
    print_json,
    reader,
    settings,
)
from auditkeep.model.event import Submitter

STATUSES = ("open", "acknowledged", "resolved")
ALERTS = "alerts"  # the store collections of auditkeep.alerts.state (kept in step)
DEAD_LETTERS = "alert_dead_letters"


def _cells(*values: str) -> list[Text]:
    """Table cells shown as written: rule text such as ``[failure, denied]`` is not markup."""
    return [Text(v) for v in values]


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return "cli:unknown"


def _when(ns: int) -> str:
    from auditkeep.model.timefmt import format_rfc3339

    return format_rfc3339(ns - ns % 1_000_000_000)


# -- auditkeep alerts ----------------------------------------------------------------------


@click.group()
def alerts() -> None:
    """Alerts: run the rules, list alerts, acknowledge and resolve them."""


@alerts.command("run")
@global_options
def run_alerts() -> None:
    """Run the alert runner in the foreground until Ctrl-C (or SIGTERM).

    It evaluates the rules of rules_dir (reloaded when files change) and those posted
    through the API over every tenant's log, from where it stopped last time, and delivers
    the alerts to the configured notifiers. Set alerts.run_in_server = false so that
    `auditkeep serve` does not run one too.
    """
    from auditkeep.alerts.service import AlertService, RunnerBusy
    from auditkeep.config import open_ledger

    s = settings()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("auditkeep")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    lg = open_ledger(s, create=False, background=False)
    lg.submitter = Submitter("cli", "alerts run")
    svc = AlertService(lg, s, validate=True)
    try:
        try:
            svc.start()
        except RunnerBusy as exc:
            raise click.ClickException(str(exc)) from None
        rules, errors = svc.catalog.file_rules, svc.catalog.file_errors
        err.print(f"alert runner: {len(rules)} rules from {s.rules_dir or '(no rules_dir)'}, {len(errors)} refused; Ctrl-C to stop", highlight=False)
        for e in errors:
            err.print(f"  refused: {e.render()}", highlight=False, markup=False)
        while not stop.wait(0.5):
            pass
        err.print("stopping: saving cursors, finishing deliveries", highlight=False)
    finally:
        svc.stop()
        lg.close()
        for sig, old in previous.items():
            signal.signal(sig, old)
        logger.removeHandler(handler)


@alerts.command("list")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only alerts in this state.")
@click.option("--rule", default=None, metavar="ID", help="Only alerts of this rule.")
@click.option("--tenant", "-t", default=None, help="Only this tenant [default: all].")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@global_options
def list_alerts(status: str | None, rule: str | None, tenant: str | None, limit: int, as_json: bool) -> None:
    """List alerts, newest first."""
    from rich.table import Column, Table

    from auditkeep.alerts.state import AlertBook

    with ledger() as lg:
        items, _ = AlertBook(lg).find(tenant, status, rule, limit)
    if as_json:
        for rec in items:
            print_json(rec)
        return
    table = Table("time", "tenant", "severity", "status", "rule", "title")
    table.columns.insert(0, Column("id", no_wrap=True, min_width=32))
    for rec in items:
        table.add_row(*_cells(rec.id, _when(rec.time), rec.tenant, rec.severity, rec.status, rec.rule_id, rec.title))
    out.print(table)
    out.print(f"{len(items)} alert(s)", highlight=False)


@alerts.command("show")
@click.argument("alert_id")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@global_options
def show_alert(alert_id: str, as_json: bool) -> None:
    """One alert with its explanation, history and deliveries."""
    from auditkeep.alerts.state import AlertBook

    with ledger() as lg:
        book = AlertBook(lg)
        rec = book.get(_full_id(lg, ALERTS, alert_id))
        deliveries = book.deliveries(rec)
    if as_json:
        print_json({**msgspec.to_builtins(rec), "deliveries": msgspec.to_builtins(deliveries)})
        return
    out.print(f"[bold]{escape(rec.title)}[/bold]  ({rec.severity}, {rec.status})")
    out.print(rec.explanation, highlight=False, markup=False)
    for label, value in (
        ("id", rec.id), ("rule", f"{rec.rule_name} ({rec.rule_id})"), ("tenant", rec.tenant),
        ("group", rec.group_key or "-"), ("events", f"{rec.count} (log index {rec.first_index}..{rec.last_index})"),
        ("fired", rec.created),
    ):
        out.print(f"  {label:<8} {value}", highlight=False, markup=False)
    for ch in rec.history:
        note = f" — {ch.note}" if ch.note else ""
        out.print(f"  {ch.status:<8} by {ch.actor} at {ch.at}{note}", highlight=False, markup=False)
    for d in deliveries:
        extra = d.delivered_at or d.error or ""
        out.print(f"  notify   {d.notifier}: {d.status} {extra}", highlight=False, markup=False)


def _full_id(lg: Any, collection: str, given: str) -> str:
    """The id a unique prefix (6 characters or more, as in listings) stands for."""
    from auditkeep.store.prefix import AmbiguousPrefix, resolve_prefix

    try:
        return resolve_prefix(lg.store, collection, given) or given
    except AmbiguousPrefix as exc:
        raise click.BadParameter(str(exc), param_hint="ID") from None


def _change(alert_id: str, to: str, note: str | None) -> None:
    from auditkeep.alerts.state import AlertBook, TransitionError

    with ledger() as lg:
        try:
            rec = AlertBook(lg).transition(_full_id(lg, ALERTS, alert_id), "acknowledged" if to == "ack" else "resolved", _actor(), note=note, actor_type="user")
        except TransitionError as exc:
            raise click.ClickException(str(exc)) from None
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--note") from None
    out.print(f"alert {rec.id} is now {rec.status} (by {_actor()})", highlight=False)


@alerts.command("ack")
@click.argument("alert_id")
@click.option("--note", default=None, help="Why (kept with the alert and in the log).")
@global_options
def ack_alert(alert_id: str, note: str | None) -> None:
    """Acknowledge an open alert (recorded as cli:<login> in the tenant's log)."""
    _change(alert_id, "ack", note)


@alerts.command("resolve")
@click.argument("alert_id")
@click.option("--note", default=None, help="How it was resolved.")
@global_options
def resolve_alert(alert_id: str, note: str | None) -> None:
    """Resolve an open or acknowledged alert."""
    _change(alert_id, "resolve", note)


@alerts.command("dead-letters")
@click.option("--tenant", "-t", default=None, help="Only this tenant [default: all].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@global_options
def dead_letters(tenant: str | None, as_json: bool) -> None:
    """Deliveries that failed after every retry; re-send them with `auditkeep alerts resend`."""
    from rich.table import Column, Table

    from auditkeep.alerts.state import AlertBook

    with ledger() as lg:
        items = AlertBook(lg).dead_letters(tenant)
    if as_json:
        for v in items:
            print_json(v)
        return
    table = Table("at", "notifier", "tenant", "rule", "attempts", "error")
    table.columns.insert(0, Column("id", no_wrap=True))
    for v in items:
        table.add_row(*_cells(v.id, v.at, v.notifier, v.tenant, v.rule_id, str(v.attempts), v.error))
    out.print(table)
    out.print(f"{len(items)} dead letter(s)", highlight=False)


@alerts.command("resend")
@click.argument("letter_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every dead letter.")
@global_options
def resend(letter_ids: tuple[str, ...], everything: bool) -> None:
    """Queue dead letters for delivery again; the running alert runner (serve or
    `auditkeep alerts run`) sends them, or the next one to start."""
    from auditkeep.alerts.state import AlertBook

    if not letter_ids and not everything:
        raise click.UsageError("name dead letters (ids from `auditkeep alerts dead-letters`) or use --all")
    with ledger() as lg:
        book = AlertBook(lg)
        ids = [v.id for v in book.dead_letters()] if everything else [_full_id(lg, DEAD_LETTERS, i) for i in letter_ids]
        for letter_id in ids:
            book.requeue(letter_id)
    out.print(f"{len(ids)} delivery(ies) queued again", highlight=False)


# -- auditkeep rules -----------------------------------------------------------------------


@click.group()
def rules() -> None:
    """Rules: list, check, try over a file of events, backtest over stored history."""


def _print_errors(errors: list[Any]) -> None:
    for e in errors:
        err.print(f"[red]error:[/red] {escape(e.render())}", highlight=False)


@rules.command("list")
@click.option("--tenant", "-t", default="default", show_default=True, help="Include the rules posted for this tenant.")
@click.option("--json", "as_json", is_flag=True, help="As JSON: {rules, errors}.")
@global_options
def list_rules(tenant: str, as_json: bool) -> None:
    """The rules that run over a tenant's log (rules_dir and API) and the refused ones."""
    from rich.table import Table

    from auditkeep.alerts.catalog import RuleCatalog

    s = settings()
    with ledger() as lg:
        catalog = RuleCatalog(lg.store, s.rules_dir, s.alerts.max_rule_bytes)
        infos = catalog.describe(tenant)
        errors = catalog.errors_for(tenant)
    if as_json:
        print_json({"rules": infos, "errors": [e.to_dict() for e in errors]})
        return
    table = Table("id", "kind", "severity", "source", "name")
    for i in infos:
        where = f"{i.file}:{i.line}" if i.source == "file" else f"api ({i.rule_set})"
        table.add_row(*_cells(i.id, i.kind, i.severity, where, i.name))
    out.print(table)
    out.print(f"{len(infos)} rule(s), {len(errors)} refused", highlight=False)
    _print_errors(errors)


def _load(path: Path) -> tuple[list[Any], list[Any]]:
    from auditkeep.alerts.loader import load_rules_dir, load_rules_file

    if path.is_dir():
        return load_rules_dir(path)
    return load_rules_file(path)


@rules.command("check")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="As JSON: {rules, errors}.")
def check_rules(path: Path, as_json: bool) -> None:
    """Load a rule file or directory and report each refused rule as file:line: reason.

    Exit status 1 when anything was refused.
    """
    loaded, errors = _load(path)
    if as_json:
        print_json({"rules": [{"id": r.id, "kind": r.kind, "file": r.file, "line": r.line} for r in loaded],
                    "errors": [e.to_dict() for e in errors]})
    else:
        _print_errors(errors)
        out.print(f"{len(loaded)} rule(s) loaded, {len(errors)} refused", highlight=False)
    if errors:
        sys.exit(2)  # bad input (1 is for integrity failures)


def _alert_table(found: list[Any], title: str) -> None:
    from rich.table import Column, Table

    table = Table("rule", "severity", "group", "events", "explanation", title=title)
    table.columns.insert(0, Column("time", no_wrap=True, min_width=20))
    for a in found:
        table.add_row(*_cells(_when(a.time), a.rule_id, a.severity, a.group_key or "-", f"{a.first_index}..{a.last_index}", a.explanation))
    out.print(table)


def _rules_or_fail(path: Path) -> list[Any]:
    loaded, errors = _load(path)
    _print_errors(errors)
    if not loaded:
        raise click.ClickException(f"no rule loaded from {path}")
    return loaded


def _file_events(path: Path, fmt: str, tenant: str) -> list[tuple[str, int, dict[str, Any]]]:
    from auditkeep.model.errors import ValidationError
    from auditkeep.model.event import Event
    from auditkeep.model.validate import decode_batch, decode_event, validate_event

    raw = path.read_bytes()
    events: list[Event]
    if fmt == "json":
        if raw.lstrip()[:1] == b"[":
            events = decode_batch(raw)
        else:
            events = []
            for number, line in enumerate(raw.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    events.append(decode_event(line))
                except ValidationError as exc:
                    raise ValidationError(exc.message, exc.path, None).with_line(number) from None
    else:
        try:
            from auditkeep.sources.formats import SOURCE_FORMATS as parsers
        except ModuleNotFoundError:  # a build without the sources
            parsers = {}
        if fmt not in parsers:
            known = ", ".join(["json", *sorted(parsers)])
            raise click.BadParameter(f"unknown format {fmt!r}; choose from {known}", param_hint="--format")
        # As ingest does: a record the source cannot map is reported and skipped, the
        # rest is tested.
        parsed = parsers[fmt].parse(raw)
        events = parsed.events
        for e in parsed.errors:
            _skipped(e.reason, e.raw)
    out_events = []
    for i, ev in enumerate(events):
        try:
            validate_event(ev, tenant=tenant)
        except ValidationError as exc:
            if fmt == "json":
                raise exc.at(i) from None
            _skipped(str(exc), msgspec.json.encode(ev))
            continue
        doc = msgspec.to_builtins(ev)
        doc.setdefault("tenant", tenant)
        out_events.append((tenant, i, doc))
    return out_events


def _skipped(reason: str, raw: bytes) -> None:
    head = raw[:120].decode("utf-8", "backslashreplace").replace("\n", "\\n")
    more = "…" if len(raw) > 120 else ""
    err.print(f"skipped a record that cannot be mapped: {reason}: {head}{more}", highlight=False, markup=False)


@rules.command("test")
@click.argument("rule_file", type=click.Path(exists=True, path_type=Path))
@click.option("--events", "events_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON Lines (or a JSON array) of events, or raw records of --format.")
@click.option("--format", "fmt", default="json", show_default=True, metavar="FORMAT",
              help="json, or a source format (kubernetes, cloudtrail, ...) when the sources are installed.")
@click.option("--tenant", "-t", default="default", show_default=True, help="Tenant the events are taken to belong to.")
@click.option("--json", "as_json", is_flag=True, help="One JSON alert per line.")
def test_rules(rule_file: Path, events_file: Path, fmt: str, tenant: str, as_json: bool) -> None:
    """Run the rules of RULE_FILE (a file or directory) over a file of events and print
    what would fire. Nothing is stored."""
    from auditkeep.alerts.backtest import simulate
    from auditkeep.alerts.timeutil import event_time_ns

    loaded = _rules_or_fail(rule_file)
    events = _file_events(events_file, fmt, tenant)
    times = [t for t in (event_time_ns(e) for _, _, e in events) if t is not None]
    found = simulate(loaded, events, end_ns=max(times) if times else None)
    if as_json:
        for a in found:
            print_json(a)
        return
    _alert_table(found, f"{len(found)} alert(s) from {len(loaded)} rule(s) over {len(events)} event(s)")


@rules.command("backtest")
@click.argument("rule_file", type=click.Path(exists=True, path_type=Path))
@click.option("--since", default="30d", show_default=True, help="From this time (RFC 3339, or ago: 15m, 2h, 30d).")
@click.option("--until", default=None, help="Up to this time [default: now].")
@click.option("--tenant", "-t", default="default", show_default=True, help="Tenant whose log is read.")
@click.option("--json", "as_json", is_flag=True, help="One JSON alert per line.")
@global_options
def backtest_rules(rule_file: Path, since: str, until: str | None, tenant: str, as_json: bool) -> None:
    """Run the rules of RULE_FILE over a tenant's stored history and print what would
    have fired. Nothing is stored, logged or sent."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from auditkeep.alerts.backtest import first_index_since, simulate, stored_events
    from auditkeep.query.filters import parse_time

    loaded = _rules_or_fail(rule_file)
    now = time.time_ns()
    since_ns = parse_time(since, "since", now)
    until_ns = parse_time(until, "until", now) if until else now
    with reader() as lg:
        start = first_index_since(lg, tenant, since_ns)
        end = lg.head(tenant).size
        bar = Progress(TextColumn("[bold]backtest"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                       console=err, disable=not interactive())
        with bar:
            task = bar.add_task("backtest", total=end - start)
            events = stored_events(lg, tenant, start, end, until_ns=until_ns, progress=lambda n: bar.advance(task, n))
            found = simulate(loaded, events, end_ns=until_ns)
    if as_json:
        for a in found:
            print_json(a)
        return
    _alert_table(found, f"{len(found)} alert(s) from {len(loaded)} rule(s) over log index {start}..{end - 1} of {tenant}")
