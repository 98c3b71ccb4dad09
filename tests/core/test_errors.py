"""One exception tree: every error auditkeep raises on purpose descends from AuditkeepError,
and the command line's exit status follows the branch (2 user error, 1 integrity, 70 bug)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Iterator

import click
import pytest

import auditkeep
from auditkeep import errors
from auditkeep.cli.main import cli, main

# Exceptions that belong to a library's tree rather than ours.
FOREIGN_BASES = (click.ClickException,)


def _modules() -> Iterator[str]:
    for info in pkgutil.walk_packages(auditkeep.__path__, "auditkeep."):
        yield info.name


def _exception_classes() -> list[type[BaseException]]:
    found = []
    for name in _modules():
        try:
            module = importlib.import_module(name)
        except Exception:  # an integration that needs its framework installed or configured (django)
            continue
        for value in list(vars(module).values()):
            # type(value), not isinstance: a lazy object (django.conf.settings) would set itself up
            if issubclass(type(value), type) and issubclass(value, BaseException) and value.__module__ == name:
                found.append(value)
    return found


def test_every_exception_of_the_package_descends_from_the_root() -> None:
    classes = _exception_classes()
    assert len(classes) > 20  # the walk found the package's exceptions
    strays = [
        f"{c.__module__}.{c.__qualname__}"
        for c in classes
        if not issubclass(c, errors.AuditkeepError) and not issubclass(c, FOREIGN_BASES)
    ]
    assert strays == []


def test_the_old_homes_and_builtin_bases_still_work() -> None:
    from auditkeep.client import APIError as ClientAPIError
    from auditkeep.config import ConfigError
    from auditkeep.ledger.datadir import DataDirError
    from auditkeep.model.errors import MalformedJSON, ValidationError
    from auditkeep.server.errors import ApiError
    from auditkeep.store.base import StoreError, StoreUnavailable

    assert (ConfigError, DataDirError, StoreError, StoreUnavailable) == (
        errors.ConfigError, errors.DataDirError, errors.StoreError, errors.StoreUnavailable,
    )
    assert ClientAPIError is errors.APIError and issubclass(ApiError, errors.APIError)
    assert issubclass(ValidationError, ValueError) and issubclass(MalformedJSON, errors.UserError)
    refusal = ApiError(429, "slow down", {"Retry-After": "1"})
    assert (str(refusal), refusal.status, refusal.headers) == ("slow down", 429, {"Retry-After": "1"})
    assert str(ClientAPIError(404, "no such tenant")) == "HTTP 404: no such tenant"


def test_a_malformed_json_error_keeps_its_type_when_placed() -> None:
    from auditkeep.model.errors import MalformedJSON
    from auditkeep.model.validate import decode_batch

    with pytest.raises(MalformedJSON) as info:
        decode_batch(b'[{"actor": {"id": "a"}, "action": "a.b", "action": "c.d"}]')
    assert isinstance(info.value.at(3), MalformedJSON) and isinstance(info.value.with_line(2), MalformedJSON)


def _raise(exc: BaseException) -> click.Command:
    @click.command(name="arch-test-raise")
    def command() -> None:
        raise exc

    return command


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errors.UserError("bad input"), 2),
        (errors.ConfigError("bad setting"), 2),
        (errors.NotFound("no tenant t"), 2),
        (errors.StoreUnavailable("database unreachable"), 2),
        (errors.IntegrityError("leaf 3 differs"), 1),
        (ZeroDivisionError("a bug"), 70),
        (errors.TransportError("a bug here: the CLI talks to no server"), 70),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_the_exit_status_follows_the_branch(
    exc: BaseException, status: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AUDITKEEP_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["auditkeep", "arch-test-raise"])
    cli.add_command(_raise(exc))
    try:
        with pytest.raises(SystemExit) as info:
            main()
    finally:
        cli.commands.pop("arch-test-raise")
    stderr = capsys.readouterr().err
    assert info.value.code == status
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(exc) in lines[0], stderr


def test_no_decision_is_made_on_an_exception_message() -> None:
    """Errors are told apart by type: no ``... in str(exc)``, no ``.reason.startswith``, and no
    ``except RuntimeError`` (our errors have their own classes; asyncio's RuntimeError is
    caught only beside the OSErrors of a closing transport)."""
    import re
    from pathlib import Path

    package = Path(auditkeep.__file__).parent
    pattern = re.compile(r"in str\((exc|e|err|error)\)|\.reason\.startswith\(|except RuntimeError\b|except \(RuntimeError")
    found = sorted(
        f"{path.relative_to(package)}:{n}"
        for path in package.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    )
    assert found == []

