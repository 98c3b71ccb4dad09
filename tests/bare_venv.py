"""A virtual environment with the standard library and a few named distributions, nothing of
auditkeep: where the tests run examples/ as an auditor would (a fresh venv with
``pip install cryptography``).

The named distributions and what they require are linked from the environment the tests run
in, instead of installed by pip (which took most of these tests' time): the same code, and
nothing else on the path of ``python -I``."""

from __future__ import annotations

import importlib.metadata
import sys
import sysconfig
import venv
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement


def _closure(names: Iterable[str]) -> list[importlib.metadata.Distribution]:
    """The distributions named and, transitively, those they require here (no extras)."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        dist = importlib.metadata.distribution(todo.pop())
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            continue
        seen[key] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def make_bare_venv(root: Path, distributions: Iterable[str]) -> Path:
    """A venv at ``root`` (no pip) whose site-packages links ``distributions``; its python."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
    site = Path(sysconfig.get_path("purelib", "venv", vars={"base": str(root), "platbase": str(root)}))
    assert site.is_dir(), site
    for dist in _closure(distributions):
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if ".." not in Path(str(f)).parts}
        for top in tops:
            source = Path(str(dist.locate_file(top)))
            if top not in ("bin", "__pycache__") and source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)
    python = root / "bin" / "python"
    assert python.exists(), python
    assert sys.prefix != str(root)
    return python
