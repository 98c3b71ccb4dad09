"""Parts of a source's record kept as JSON text, and how to put them back.

Events carry a source's native record under ``metadata`` (``metadata.k8s``,
``metadata.cloudtrail``), but an event is bounded in depth, keys and array length, and
native records are not (a Deployment's container spec sits ten levels down). What does not
fit is kept losslessly as its compact JSON text, and its place is listed under
``metadata._json_text`` as a JSON Pointer (RFC 6901) from metadata, e.g.
``/k8s/requestObject/spec/template/spec/containers/0/securityContext``. Readers that must
see every path of the original record (detection rules) call :func:`restore_json_text`;
everything else reads the stored shape.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson

JSON_TEXT_KEY = "_json_text"
"""Under metadata: the JSON Pointers of the parts kept as JSON text."""

NOWHERE: Any = object()
"""What :func:`lookup` returns for a pointer that leads nowhere."""


def escape_token(key: str) -> str:
    """A key as a JSON Pointer reference token (RFC 6901: ``~`` -> ``~0``, ``/`` -> ``~1``)."""
    if "~" in key or "/" in key:
        return key.replace("~", "~0").replace("/", "~1")
    return key


def unescape_token(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~") if "~" in token else token


def _child(node: Any, key: str) -> Any:
    if isinstance(node, dict):
        return node.get(key, NOWHERE)
    if isinstance(node, list) and key.isdigit() and int(key) < len(node):
        return node[int(key)]
    return NOWHERE


def _put(node: Any, key: str, value: Any) -> None:
    if isinstance(node, dict):
        node[key] = value
    else:
        node[int(key)] = value


def lookup(root: Any, ptr: str) -> Any:
    """The value at JSON Pointer ``ptr`` under ``root``, or :data:`NOWHERE`."""
    node = root
    for token in ptr.split("/")[1:]:
        node = _child(node, unescape_token(token))
        if node is NOWHERE:
            return NOWHERE
    return node


def restore_json_text(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` with the parts listed under ``_json_text`` decoded back in place: the
    record as the source sent it. The given metadata is not changed (the containers on the
    way are copied). A listed place that does not hold JSON text of an object or array (a
    redaction changed it, the list was edited) stays as it is."""
    pointers = metadata.get(JSON_TEXT_KEY)
    if not isinstance(pointers, list) or not pointers:
        return metadata
    out = dict(metadata)
    for ptr in pointers:
        if not isinstance(ptr, str) or not ptr.startswith("/"):
            continue
        *parents, last = [unescape_token(t) for t in ptr.split("/")[1:]]
        node: Any = out
        for key in parents:
            child = _child(node, key)
            if not isinstance(child, dict | list):
                break
            copy = dict(child) if isinstance(child, dict) else list(child)
            _put(node, key, copy)
            node = copy
        else:
            text = _child(node, last)
            if isinstance(text, str) and text[:1] in ("{", "["):
                with contextlib.suppress(orjson.JSONDecodeError):
                    _put(node, last, orjson.loads(text))
    return out
