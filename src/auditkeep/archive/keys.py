"""The data keys of sealed segments, and re-wrapping them when the master key rotates.

A sealed segment's manifest carries its data key wrapped by the master key current when it
was written (:mod:`auditkeep.archive.seal`). The manifest is write-once (a locked S3 object
cannot be replaced), so a later wrapping goes into a separate, rewritable key object beside
it, ``<tenant>/<first>-<end>.key.json``: ``{"format": "auditkeep-archive-key/1", "context":
..., "wraps": [{"master_key": ID, "wrapped_key": BASE64}, ...]}``. Readers take the key
object's wraps when there is one, else the manifest's. Neither the manifest nor the key
object is signed, and neither needs to be: a wrong key opens no leaf, and the leaves are
checked against the signed hashes.

``rewrap_segments`` runs in two phases around the store's own rotation, so that a crash
anywhere leaves every segment openable by whichever master key the store then holds: first
a wrap under the new master key is added beside the old one, then (after the store's keys
are re-wrapped) the wraps under other master keys are dropped. Both phases skip what is
already done, so running the rotation again finishes a stopped one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from auditkeep.archive.check import SEGMENT_KEY_FORMAT, load_manifest, segment_stem
from auditkeep.archive.target import Target
from auditkeep.crypto.atrest import KeyUnavailable, Kms
from auditkeep.errors import UserError
from auditkeep.ledger.atrest import EncryptedStore
from auditkeep.ledger.key_events import rotate_master_key
from auditkeep.ledger.ledger import Ledger

KEY_FORMAT = "auditkeep-archive-key/1"
KEY_SUFFIX = ".key.json"
MANIFEST_SUFFIX = ".manifest.json"

Get = Callable[[str], bytes | None]


def key_object_name(name: str) -> str:
    """The key object of the segment ``name`` (either object, or the stem)."""
    return segment_stem(name) + KEY_SUFFIX


def wraps_of(get: Get, name: str, manifest: dict[str, Any]) -> list[dict[str, str]]:
    """The segment's data key wrappings (master key id, wrapped key): the key object's when
    there is one, else the manifest's; [] when the segment is not sealed."""
    info = manifest["data"].get("sealed")
    if not isinstance(info, dict):
        return []
    raw = get(key_object_name(name))
    if raw is not None:
        try:
            doc = json.loads(raw)
            if doc.get("format") == KEY_FORMAT and doc.get("context") == info.get("context"):
                return [{"master_key": str(w["master_key"]), "wrapped_key": str(w["wrapped_key"])} for w in doc["wraps"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # an unreadable key object: the manifest's wrapping still stands
    return [{"master_key": str(info.get("master_key")), "wrapped_key": str(info.get("wrapped_key"))}]


def segment_data_key(get: Get, name: str, manifest_raw: bytes, kms: Kms) -> bytes | None:
    """The segment's data key, unwrapped by ``kms``; None when the segment is not sealed.
    Raises :class:`UserError` naming the master keys it is wrapped under when ``kms`` is
    none of them."""
    m = load_manifest(manifest_raw)
    wraps = wraps_of(get, name, m)
    if not wraps:
        return None
    context = str(m["data"]["sealed"]["context"]).encode()
    for w in wraps:
        if w["master_key"] == kms.key_id:
            return kms.unwrap(base64.b64decode(w["wrapped_key"]), context)
    held = ", ".join(w["master_key"] for w in wraps)
    raise UserError(f"the segment's data key is wrapped under master key {held}; the configured one is {kms.key_id}")


def segment_key_file(manifest_raw: bytes, data_key: bytes) -> bytes:
    """A segment key file (what ``examples/verify_segment.py --segment-key`` reads)."""
    m = load_manifest(manifest_raw)
    doc = {"format": SEGMENT_KEY_FORMAT, "context": m["data"]["sealed"]["context"],
           "key": base64.b64encode(data_key).decode("ascii")}
    return json.dumps(doc).encode() + b"\n"


@dataclass
class Rewrapped:
    segments: int = 0  # sealed segments seen
    changed: int = 0  # key objects written
    left: list[str] | None = None  # segments no master key at hand opens (named, left as they are)


def _sealed_segments(target: Target) -> list[tuple[str, bytes]]:
    out = []
    for name in target.names():
        if name.endswith(MANIFEST_SUFFIX):
            raw = target.get(name)
            if raw is not None and b'"sealed"' in raw:
                out.append((name[: -len(MANIFEST_SUFFIX)], raw))
    return out


def _write(target: Target, stem: str, context: str, wraps: list[dict[str, str]]) -> None:
    doc = {"format": KEY_FORMAT, "context": context, "wraps": wraps}
    target.replace(key_object_name(stem), json.dumps(doc, indent=1).encode() + b"\n")


def add_wraps(target: Target, old: Kms, new: Kms) -> Rewrapped:
    """Phase one: beside each segment's wrap under ``old``, a wrap of the same key under ``new``."""
    done = Rewrapped(left=[])
    for stem, raw in _sealed_segments(target):
        m = load_manifest(raw)
        done.segments += 1
        wraps = wraps_of(target.get, stem, m)
        if any(w["master_key"] == new.key_id for w in wraps):
            continue
        context = str(m["data"]["sealed"]["context"])
        try:
            key = segment_data_key(target.get, stem, raw, old)
        except (UserError, KeyUnavailable):
            assert done.left is not None
            done.left.append(stem)  # wrapped under neither key: left as it is (and said)
            continue
        assert key is not None
        wrapped = base64.b64encode(new.wrap(key, context.encode())).decode("ascii")
        _write(target, stem, context, [*wraps, {"master_key": new.key_id, "wrapped_key": wrapped}])
        done.changed += 1
    return done


def drop_wraps(target: Target, keep: Kms) -> Rewrapped:
    """Phase two: each segment wrapped under ``keep`` keeps only that wrap."""
    done = Rewrapped(left=[])
    for stem, raw in _sealed_segments(target):
        m = load_manifest(raw)
        done.segments += 1
        wraps = wraps_of(target.get, stem, m)
        mine = [w for w in wraps if w["master_key"] == keep.key_id]
        if not mine:
            assert done.left is not None
            done.left.append(stem)
            continue
        if len(wraps) > 1:
            _write(target, stem, str(m["data"]["sealed"]["context"]), mine[:1])
            done.changed += 1
    return done


def archive_target(archive_settings: Any) -> Target | None:
    """The configured archive target, or None when ``[archive]`` names none."""
    if not (archive_settings.dir or archive_settings.s3_bucket):
        return None
    from auditkeep.archive.target import open_target

    return open_target(archive_settings)


@dataclass
class Rotated:
    keys: int  # the store's data keys re-wrapped (0: the store held the new master key already)
    added: Rewrapped | None  # phase one on the archive (None: no archive target)
    dropped: Rewrapped | None  # phase two


def rotate_with_segments(ledger: Ledger, new: Kms, actor: dict[str, str], target: Target | None) -> Rotated:
    """Re-wrap the store's data keys and the archive's segment keys under ``new`` (see the
    module's docstring for the order). When the store already holds ``new`` (a rotation
    stopped after its store step), only the segments are finished."""
    store = ledger.store
    if not isinstance(store, EncryptedStore):
        raise UserError("this store is not encrypted (encryption is chosen at `auditkeep init --encrypt`)")
    old = store.keys.kms
    if old.key_id == new.key_id:
        if target is None:
            raise UserError("the new master key is the current one")
        return Rotated(0, None, drop_wraps(target, new))
    added = add_wraps(target, old, new) if target is not None else None
    n = rotate_master_key(ledger, new, actor)
    return Rotated(n, added, drop_wraps(target, new) if target is not None else None)
