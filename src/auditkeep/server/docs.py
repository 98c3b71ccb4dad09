"""``/docs``: a self-contained HTML page of the API (no scripts, no outside assets)."""

from __future__ import annotations

from html import escape

from auditkeep.server.openapi import OPERATIONS, Op

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{margin-top:2.2rem;font-size:1.1rem;border-bottom:1px solid #ddd}
code,pre{font:13px ui-monospace,monospace;background:#f5f5f5;padding:.1rem .3rem}
pre{padding:.6rem;overflow-x:auto}
.m{display:inline-block;min-width:4.2rem;font-weight:600}
table{border-collapse:collapse;margin:.4rem 0}td,th{text-align:left;padding:.15rem .6rem;border-bottom:1px solid #eee}
"""


def _op(op: Op) -> str:
    rows = "".join(
        f"<tr><td><code>{escape(p.name)}</code></td><td>{p.where}</td><td>{'yes' if p.required else ''}</td>"
        f"<td>{escape(p.description)}</td></tr>"
        for p in op.params
    )
    params = f"<table><tr><th>parameter</th><th>in</th><th>required</th><th></th></tr>{rows}</table>" if rows else ""
    auth = f"Key scope: {escape(op.auth)}." if op.auth else "No key needed."
    statuses = ", ".join(str(s) for s in (op.ok, *op.errors))
    example = f"<pre>{escape(op.example)}</pre>" if op.example else ""
    return (
        f"<h2><span class=m>{op.method.upper()}</span> <code>{escape(op.path)}</code> — {escape(op.summary)}</h2>"
        f"<p>{escape(op.description)}</p><p>{auth} Statuses: {statuses}.</p>{params}{example}"
    )


def docs_page() -> str:
    body = "".join(_op(op) for op in OPERATIONS)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>auditkeep API</title>"
        f"<style>{_STYLE}</style></head><body><h1>auditkeep HTTP API</h1>"
        "<p>Send <code>Authorization: Bearer ak_&lt;keyid&gt;_&lt;secret&gt;</code>. Errors are JSON "
        "<code>{\"error\": \"...\"}</code>. The machine-readable description is "
        "<a href=/openapi.json>/openapi.json</a>.</p>"
        f"{body}</body></html>"
    )
