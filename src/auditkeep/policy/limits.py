"""Fit a source's metadata into the event model's limits without losing the record.

Sources keep the native record whole under ``metadata.<source>``, and native records nest
deeper (a Deployment spec), hold wider objects or larger numbers than an event may carry.
Rather than refuse the record, :func:`fit_metadata` keeps what does not fit as text:

- an object or array nested beyond ``max_depth``, an object with more than ``max_keys``
  keys or an array longer than ``max_array`` becomes its compact JSON text (lossless), and
  its place is listed under ``metadata._json_text`` as a JSON Pointer (RFC 6901) from
  metadata (``/k8s/requestObject/spec/template/spec/containers/0/securityContext``), so
  that readers that need the record whole (detection rules) can put it back with
  :func:`auditkeep.model.json_text.restore_json_text`;
- an integer beyond ±(2^53-1) becomes its decimal text, a non-finite float its name
  (lossless);
- what still does not fit (a string longer than ``max_string``, JSON text too long to keep)
  is cut or replaced by a marker, and its path is listed under ``metadata._omitted``;
- when the whole event would exceed ``max_event_bytes``, the caller's ``drop_first`` paths
  (request and response bodies) go first, also listed under ``_omitted``.
"""

from __future__ import annotations

import base64
import functools
import math
import sys
from collections.abc import Sequence
from typing import Annotated, Any, Union

import msgspec
import orjson

from auditkeep.errors import UserError
from auditkeep.model import DEFAULT_LIMITS, Limits
from auditkeep.model.json_text import JSON_TEXT_KEY, NOWHERE, escape_token, lookup
from auditkeep.policy.types import OMITTED_KEY

MAX_SAFE_INT = 2**53 - 1
# Room left for the fields outside metadata when estimating the canonical size.
_ENVELOPE_BYTES = 2048


def bounded_type(levels: int, limits: Limits = DEFAULT_LIMITS) -> Any:
    """A msgspec type for a JSON object that fits ``limits`` when placed so that it and its
    descendants use at most ``levels`` nesting levels (a record kept at ``metadata.x`` has
    ``max_depth - 1``). Decoding with it checks the limits in the same pass, in C."""
    return _bounded(levels, limits)


@functools.lru_cache(maxsize=32)
def _bounded(levels: int, limits: Limits) -> Any:
    text = Annotated[str, msgspec.Meta(max_length=limits.max_string)]
    num = Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]
    real = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]
    value: Any = Union[text, num, real, bool, None]  # noqa: UP007 (runtime type object)
    for _ in range(levels - 1):
        value = Union[  # noqa: UP007
            text,
            num,
            real,
            bool,
            None,
            Annotated[dict[text, value], msgspec.Meta(max_length=limits.max_keys)],
            Annotated[list[value], msgspec.Meta(max_length=limits.max_array)],
        ]
    return Annotated[dict[text, value], msgspec.Meta(max_length=limits.max_keys)]


@functools.lru_cache(maxsize=32)
def bounded_decoder(levels: int, limits: Limits = DEFAULT_LIMITS) -> msgspec.json.Decoder[Any]:
    """A JSON decoder for :func:`bounded_type`: ``msgspec.ValidationError`` when the
    object would not fit (fall back to :func:`fit_metadata`), ``msgspec.DecodeError`` when
    it is not JSON."""
    return msgspec.json.Decoder(_bounded(levels, limits))


class TooLarge(UserError, ValueError):
    """The event cannot be made to fit even after dropping the bodies."""


class _Fitter:
    __slots__ = ("as_json", "limits", "omitted")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.omitted: list[str] = []
        self.as_json: list[str] = []  # JSON Pointers of containers kept as their JSON text

    def as_text(self, value: Any, path: str, ptr: str) -> str:
        try:
            text = orjson.dumps(value, default=_fallback, option=orjson.OPT_SORT_KEYS).decode()
        except TypeError:  # integers beyond 64 bits, keys that are not strings: rare
            text = orjson.dumps(
                _plain(value), default=_fallback, option=orjson.OPT_SORT_KEYS
            ).decode()
        if not _is_unicode(text):
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        if len(text) > self.limits.max_string:
            self.omitted.append(path)
            return f"[omitted: {len(text)} bytes of JSON beyond the limits]"[
                : self.limits.max_string
            ]
        self.as_json.append(ptr)
        return text

    def fit(self, value: Any, path: str, depth: int, ptr: str = "") -> Any:
        """``value`` (a container at ``depth``, the metadata root being 1, at JSON Pointer
        ``ptr`` from the root) made to fit."""
        lim = self.limits
        t = type(value)
        if t is dict:
            if depth > lim.max_depth or len(value) > lim.max_keys:
                return self.as_text(value, path, ptr)
            for k in value:
                if (
                    type(k) is not str
                    or len(k) > lim.max_string
                    or not (k.isascii() or _is_unicode(k))
                ):
                    return self.as_text(value, path, ptr)
            for k, v in value.items():
                tv = type(v)
                if tv is str:
                    if len(v) > lim.max_string or not (v.isascii() or _is_unicode(v)):
                        value[k] = self.clip(v, f"{path}.{k}")
                elif tv is int:
                    if not -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
                        value[k] = str(v)
                elif v is None or tv is bool:
                    continue
                else:
                    new = self.fit(v, f"{path}.{k}", depth + 1, f"{ptr}/{escape_token(k)}")
                    if new is not v:
                        value[k] = new
            return value
        if t is list:
            if depth > lim.max_depth or len(value) > lim.max_array:
                return self.as_text(value, path, ptr)
            for i, v in enumerate(value):
                if v is None or type(v) is bool:
                    continue
                new = self.fit(v, f"{path}[{i}]", depth + 1, f"{ptr}/{i}")
                if new is not v:
                    value[i] = new
            return value
        if t is str:
            if len(value) > lim.max_string or not (value.isascii() or _is_unicode(value)):
                return self.clip(value, path)
            return value
        if t is int:
            return value if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else str(value)
        if t is float:
            return value if math.isfinite(value) else repr(value)
        if value is None or t is bool:
            return value
        if isinstance(value, bytes | bytearray):
            return self.fit(base64.b64encode(value).decode(), path, depth, ptr)
        if isinstance(value, tuple):
            return self.fit(list(value), path, depth, ptr)
        # Anything else that JSON cannot carry is kept as its text.
        return self.clip(str(value), path) if len(str(value)) > lim.max_string else str(value)

    def clip(self, s: str, path: str) -> str:
        if not _is_unicode(s):
            s = s.encode("utf-8", "backslashreplace").decode("utf-8")
        m = self.limits.max_string
        if len(s) > m:
            self.omitted.append(path)
            marker = f"…[cut: {len(s)} characters]"[:m]
            return s[: max(0, m - len(marker))] + marker
        return s


def _is_unicode(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plain(value: Any) -> Any:
    """``value`` with every key as text and every integer within 64 bits."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)
    return value


def _fallback(obj: Any) -> Any:
    if isinstance(obj, bytes | bytearray):
        return base64.b64encode(obj).decode()
    if isinstance(obj, int):  # beyond 64 bits, which orjson refuses
        return str(obj)
    return str(obj)


def fit_metadata(
    metadata: dict[str, Any],
    limits: Limits = DEFAULT_LIMITS,
    drop_first: Sequence[str] = (),
) -> list[str]:
    """Make ``metadata`` (in place) pass the model's limits; return the paths it cut.

    ``drop_first`` lists dotted paths inside metadata (``k8s.responseObject``) removed, in
    order, while the event would exceed ``max_event_bytes``. Raises :class:`TooLarge` when
    even that is not enough. Paths cut are also recorded under ``metadata._omitted``.
    """
    if len(metadata) > limits.max_keys:
        raise TooLarge(f"metadata has {len(metadata)} keys, more than {limits.max_keys}")
    f = _Fitter(limits)
    for k in list(metadata):
        if type(k) is not str or len(k) > limits.max_string or not (k.isascii() or _is_unicode(k)):
            raise TooLarge("metadata keys must be short text")
    f.fit(metadata, "metadata", 1)
    if f.as_json:
        _note_json_text(metadata, f.as_json, limits)
    size = _size(metadata)
    budget = limits.max_event_bytes - _ENVELOPE_BYTES
    if size > budget:
        for rel in drop_first:
            if _pop(metadata, rel):
                f.omitted.append(f"metadata.{rel}")
                if f.as_json:
                    _note_json_text(metadata, f.as_json, limits)
                size = _size(metadata)
                if size <= budget:
                    break
        if size > budget:
            raise TooLarge(
                f"event is about {size + _ENVELOPE_BYTES} bytes, more than {limits.max_event_bytes}"
            )
    if f.omitted:
        prior = metadata.get(OMITTED_KEY)
        merged = set(f.omitted)
        if isinstance(prior, list):
            merged.update(p for p in prior if isinstance(p, str))
        metadata[OMITTED_KEY] = sorted(merged)[: limits.max_array]
        if len(metadata) > limits.max_keys:
            metadata.pop(JSON_TEXT_KEY, None)  # the record of a cut comes first
        if len(metadata) > limits.max_keys:
            raise TooLarge(f"metadata has more than {limits.max_keys} keys")
    return f.omitted


def _note_json_text(metadata: dict[str, Any], places: list[str], limits: Limits) -> None:
    """List the places kept as JSON text under ``_json_text``. The list is an aid to
    readers, never a reason to refuse a record: what of it does not fit is left out (those
    parts stay as text), and places a dropped body held are forgotten."""
    kept = [p for p in places if len(p) <= limits.max_string and lookup(metadata, p) is not NOWHERE]
    if kept and (JSON_TEXT_KEY in metadata or len(metadata) < limits.max_keys):
        metadata[JSON_TEXT_KEY] = kept[: limits.max_array]
    else:
        metadata.pop(JSON_TEXT_KEY, None)


def _size(metadata: dict[str, Any]) -> int:
    try:
        return len(orjson.dumps(metadata, default=_fallback))
    except TypeError:
        return len(orjson.dumps(_plain(metadata), default=_fallback))


def _pop(root: dict[str, Any], rel: str) -> bool:
    node: Any = root
    *parents, last = rel.split(".")
    for key in parents:
        if not isinstance(node, dict):
            return False
        node = node.get(key)
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    return False
