"""A checker of records against the vendored OCSF 1.8.0 schema (tests/testdata/ocsf/schema):
required attributes (of the class, its parents and every object), ``at_least_one``
constraints, that every attribute is one the class or object defines, primitive types, and
enum values."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from testdata_path import testdata_dir

_INT_TYPES = ("integer_t", "long_t", "timestamp_t", "port_t")


def root() -> Path:
    return testdata_dir() / "ocsf" / "schema"


@cache
def _json(rel: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root() / rel).read_text())
    return data


@cache
def _classes() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in (root() / "events").rglob("*.json"):
        out[json.loads(p.read_text())["name"]] = p
    return out


def _merge(into: dict[str, dict[str, Any]], attrs: dict[str, Any]) -> None:
    for name, spec in attrs.items():
        if name == "$include":
            for inc in spec if isinstance(spec, list) else [spec]:
                for k, v in _json(inc)["attributes"].items():
                    if k != "$include":
                        # an included profile's attributes are allowed, never required
                        into.setdefault(k, {**v, "requirement": "optional"})
            continue
        old = into.get(name, {})
        merged = {**old, **spec}
        if isinstance(old.get("enum"), dict) and isinstance(spec.get("enum"), dict):
            merged["enum"] = {**old["enum"], **spec["enum"]}  # a class adds to its parent's values
        into[name] = merged


@cache
def class_spec(uid: int) -> tuple[dict[str, dict[str, Any]], int]:
    """(attributes, category uid) of the class with ``uid`` (class_uid)."""
    cats = _json("categories.json")["attributes"]
    for name, path in _classes().items():
        d = json.loads(path.read_text())
        cat = path.parent.name
        if cat in cats and d.get("uid") is not None and cats[cat]["uid"] * 1000 + d["uid"] == uid:
            return _resolve_class(name), cats[cat]["uid"]
    raise KeyError(uid)


def _resolve_class(name: str) -> dict[str, dict[str, Any]]:
    d = json.loads(_classes()[name].read_text())
    attrs = _resolve_class(d["extends"]) if "extends" in d else {}
    attrs = {k: dict(v) for k, v in attrs.items()}
    _merge(attrs, d.get("attributes", {}))
    for prof in d.get("profiles", []):
        path = root() / "profiles" / f"{prof}.json"
        if path.exists():
            _merge(attrs, {"$include": [f"profiles/{prof}.json"]})
    return attrs


@cache
def object_spec(name: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    d = _json(f"objects/{name}.json")
    attrs: dict[str, dict[str, Any]] = {}
    constraints: dict[str, Any] = {}
    if d.get("extends") and d["extends"] != "object":
        parent, pc = object_spec(d["extends"])
        attrs = {k: dict(v) for k, v in parent.items()}
        constraints = dict(pc)
    _merge(attrs, d.get("attributes", {}))
    if d.get("constraints"):
        constraints = dict(d["constraints"])
    return attrs, constraints


def _dictionary() -> dict[str, Any]:
    return _json("dictionary.json")


def _type_of(name: str, spec: dict[str, Any]) -> tuple[str, bool]:
    d = _dictionary()["attributes"].get(name, {})
    return spec.get("type") or d.get("type", "string_t"), bool(spec.get("is_array", d.get("is_array", False)))


def _enum(name: str, spec: dict[str, Any]) -> dict[str, Any] | None:
    """The values allowed: the dictionary's (Unknown, Other) plus those the class or object adds."""
    if name in ("class_uid", "category_uid"):
        return None  # checked against the class itself in check()
    base = _dictionary()["attributes"].get(name, {}).get("enum")
    own = spec.get("enum")
    if not isinstance(base, dict) and not isinstance(own, dict):
        return None
    return {**(base if isinstance(base, dict) else {}), **(own if isinstance(own, dict) else {})}


def _check_value(path: str, name: str, spec: dict[str, Any], value: Any, errors: list[str]) -> None:
    typ, is_array = _type_of(name, spec)
    if is_array:
        if not isinstance(value, list):
            errors.append(f"{path}: expected an array")
            return
        for i, v in enumerate(value):
            _check_scalar(f"{path}[{i}]", name, typ, spec, v, errors)
        return
    _check_scalar(path, name, typ, spec, value, errors)


def _check_scalar(path: str, name: str, typ: str, spec: dict[str, Any], value: Any, errors: list[str]) -> None:
    types = _dictionary()["types"]["attributes"]
    if typ in types:
        base = types[typ].get("type", typ)
        if typ in _INT_TYPES or base in _INT_TYPES:
            if not isinstance(value, int) or isinstance(value, bool):
                errors.append(f"{path}: {typ} expects an integer, got {value!r}")
                return
        elif typ == "boolean_t":
            if not isinstance(value, bool):
                errors.append(f"{path}: expected a boolean")
        elif typ == "float_t":
            if not isinstance(value, (int, float)):
                errors.append(f"{path}: expected a number")
        elif typ == "json_t":
            pass
        else:
            if not isinstance(value, str):
                errors.append(f"{path}: {typ} expects a string, got {value!r}")
                return
            regex = types[typ].get("regex")
            if regex and not re.search(regex, value):
                errors.append(f"{path}: {value!r} is not a {typ}")
            limit = types[typ].get("max_len")
            if limit and len(value) > limit:
                errors.append(f"{path}: longer than {limit}")
        enum = _enum(name, spec)
        if enum is not None and str(value) not in enum:
            errors.append(f"{path}: {value!r} is not one of {sorted(enum, key=lambda x: int(x) if x.isdigit() else 0)}")
        return
    if typ == "object":
        if not isinstance(value, dict):
            errors.append(f"{path}: expected an object")
        return
    if not isinstance(value, dict):
        errors.append(f"{path}: expected a {typ} object, got {value!r}")
        return
    attrs, constraints = object_spec(typ)
    _check_attrs(path, attrs, constraints, value, errors)


def _check_attrs(path: str, attrs: dict[str, dict[str, Any]], constraints: dict[str, Any], value: dict[str, Any], errors: list[str]) -> None:
    for name, spec in attrs.items():
        if spec.get("requirement") == "required" and name not in value:
            errors.append(f"{path}.{name}: required")
    group = constraints.get("at_least_one")
    if group and not any(g in value for g in group):
        errors.append(f"{path}: needs at least one of {group}")
    for name, v in value.items():
        if name not in attrs:
            errors.append(f"{path}.{name}: not an attribute here")
            continue
        _check_value(f"{path}.{name}", name, attrs[name], v, errors)


def check(record: dict[str, Any]) -> list[str]:
    """Every way ``record`` departs from its class (an empty list when it conforms)."""
    errors: list[str] = []
    uid = record.get("class_uid")
    if not isinstance(uid, int):
        return ["class_uid: missing"]
    attrs, category = class_spec(uid)
    _check_attrs("", attrs, {}, record, errors)
    if record.get("category_uid") != category:
        errors.append(f"category_uid: {record.get('category_uid')} is not {category}")
    activity = record.get("activity_id")
    if isinstance(activity, int) and record.get("type_uid") != uid * 100 + activity:
        errors.append("type_uid: not class_uid * 100 + activity_id")
    return errors
