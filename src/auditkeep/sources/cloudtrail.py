"""AWS CloudTrail records mapped to :class:`Event`.

:func:`parse_cloudtrail` reads what CloudTrail delivers to S3 (a ``{"Records": [...]}``
document, often gzip-compressed), a JSON array of records, or JSON Lines (one record, or
one ``Records`` document, per line). :func:`map_cloudtrail_record` maps one decoded
record. The rules are documented in ``docs/sources/cloudtrail.md``.
"""

from __future__ import annotations

import functools
import re
import zlib
from typing import Any, Literal

import msgspec
import orjson

from auditkeep.model import DEFAULT_LIMITS, Actor, Event, Resource, Source
from auditkeep.model.jsonkeys import duplicate_key_reason
from auditkeep.policy.limits import TooLarge, bounded_type, fit_metadata
from auditkeep.sources.base import SourceError
from auditkeep.sources.common import action_segment, derived_id, is_ip, utc_rfc3339

SOURCE = "cloudtrail"
BODY_PATHS = ("cloudtrail.responseElements", "cloudtrail.requestParameters")
MAX_RECORD_BYTES = 1 << 20  # one JSON Lines line
MAX_DECOMPRESSED_BYTES = 512 << 20  # a CloudTrail file; larger is refused, not inflated

_DENIED_CODES = frozenset({"AccessDenied", "UnauthorizedOperation", "Client.UnauthorizedOperation"})
_AUTHN_SERVICES = frozenset({"sts", "signin", "sso", "sso-oidc", "cognito-identity"})
_AUTHZ_SERVICES = frozenset({"iam", "identitystore", "access-analyzer"})
# Writes to the services that decide what is logged and watched change the audit set-up.
_CONFIG_SERVICES = frozenset(
    {"cloudtrail", "config", "guardduty", "securityhub", "organizations", "macie", "macie2"}
)
_READ_PREFIXES = (
    "Get",
    "List",
    "Describe",
    "Head",
    "Lookup",
    "Search",
    "Scan",
    "Query",
    "BatchGet",
)
# requestParameters keys that name the resource acted on, most specific first.
_PARAM_RESOURCES: tuple[tuple[str, str], ...] = (
    ("functionName", "AWS::Lambda::Function"),
    ("dBInstanceIdentifier", "AWS::RDS::DBInstance"),
    ("dBClusterIdentifier", "AWS::RDS::DBCluster"),
    ("dBSnapshotIdentifier", "AWS::RDS::DBSnapshot"),
    ("roleName", "AWS::IAM::Role"),
    ("userName", "AWS::IAM::User"),
    ("groupName", "AWS::IAM::Group"),
    ("policyArn", "AWS::IAM::Policy"),
    ("roleArn", "AWS::IAM::Role"),
    ("instanceId", "AWS::EC2::Instance"),
    ("groupId", "AWS::EC2::SecurityGroup"),
    ("networkAclId", "AWS::EC2::NetworkAcl"),
    ("imageId", "AWS::EC2::Image"),
    ("repositoryName", "AWS::ECR::Repository"),
    ("secretId", "AWS::SecretsManager::Secret"),
    ("keyId", "AWS::KMS::Key"),
    ("trailName", "AWS::CloudTrail::Trail"),
    ("configurationRecorderName", "AWS::Config::ConfigurationRecorder"),
    ("detectorId", "AWS::GuardDuty::Detector"),
    ("tableName", "AWS::DynamoDB::Table"),
    ("queueUrl", "AWS::SQS::Queue"),
    ("topicArn", "AWS::SNS::Topic"),
    ("stackName", "AWS::CloudFormation::Stack"),
)
_PARAM_RANK = {key: (rank, kind) for rank, (key, kind) in enumerate(_PARAM_RESOURCES)}
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_INSTANCE_SESSION = re.compile(r"i-[0-9a-f]{8,17}")
_ID_NAMESPACE = b"auditkeep:cloudtrail:"

# A record is kept at metadata.cloudtrail: decoding with this type checks, in the same C
# pass, that it already fits the event limits there.
_Record = bounded_type(DEFAULT_LIMITS.max_depth - 1)
_record_decoder = msgspec.json.Decoder(_Record)
_SIZE_MARGIN = 4096
_SMALL = DEFAULT_LIMITS.max_event_bytes - _SIZE_MARGIN


# --------------------------------------------------------------------------- helpers


def cloudtrail_time(text: str) -> str:
    """RFC 3339 from ``eventTime``, which CloudTrail documents as UTC (a time written without
    a zone, as some pipelines do, is read as UTC)."""
    return utc_rfc3339(text)


def _derived_id(data: bytes) -> str:
    return derived_id(_ID_NAMESPACE, data)


def _s(v: Any) -> str | None:
    return v if type(v) is str and v else None


@functools.lru_cache(maxsize=8192)  # (service, API, readOnly) combinations recur
def _classify(source: str, name: str, read_only: bool | None) -> tuple[str, str]:
    service = source.removesuffix(".amazonaws.com")
    action = f"aws.{action_segment(service)}.{action_segment(name)}"
    return action, cloudtrail_category(service, name, read_only)


def _fail(reason: str, rec: Any) -> SourceError:
    try:
        raw = orjson.dumps(rec)
    except TypeError:
        raw = repr(rec).encode()
    return SourceError(SOURCE, reason, raw)


# --------------------------------------------------------------------------- rules


def cloudtrail_outcome(error_code: Any, rec: dict[str, Any] | None = None) -> str:
    """``denied`` for access-denied codes, ``failure`` for any other code, else ``success``
    (a console sign-in whose response says ``Failure`` is a failure too)."""
    if isinstance(error_code, str) and error_code:
        if error_code in _DENIED_CODES or "AccessDenied" in error_code:
            return "denied"
        return "failure"
    if rec is not None:
        resp = rec.get("responseElements")
        if isinstance(resp, dict) and resp.get("ConsoleLogin") == "Failure":
            return "failure"
    return "success"


def cloudtrail_actor_type(
    identity: dict[str, Any], source_ip: str | None
) -> Literal["user", "service"]:
    """``service`` for AWS services and for roles assumed by one; ``user`` otherwise."""
    kind = identity.get("type")
    if kind == "AWSService":
        return "service"
    if kind == "AssumedRole":
        if _s(identity.get("invokedBy")):
            return "service"
        # A service host name, not "AWS Internal": the console also calls from there.
        if source_ip and source_ip.endswith(".amazonaws.com"):
            return "service"
        issuer = _issuer(identity)
        if issuer and "/aws-service-role/" in str(issuer.get("arn", "")):
            return "service"
        arn = identity.get("arn")
        if isinstance(arn, str) and _INSTANCE_SESSION.fullmatch(arn.rsplit("/", 1)[-1]):
            return "service"  # an EC2 instance profile: the session is named after the instance
    return "user"


def _issuer(identity: dict[str, Any]) -> dict[str, Any] | None:
    ctx = identity.get("sessionContext")
    issuer = ctx.get("sessionIssuer") if isinstance(ctx, dict) else None
    return issuer if isinstance(issuer, dict) and issuer else None


def cloudtrail_category(service: str, event_name: str, read_only: Any) -> str:
    if service in _AUTHN_SERVICES:
        return "authentication"
    if service in _AUTHZ_SERVICES:
        return "authorization"
    if read_only is None or not isinstance(read_only, bool):
        read_only = event_name.startswith(_READ_PREFIXES)
    if read_only:
        return "data_access"
    if service in _CONFIG_SERVICES:
        return "configuration"
    return "data_change"


def _resource(rec: dict[str, Any]) -> Resource | None:
    res = rec.get("resources")
    if isinstance(res, list):
        for r in res:
            if isinstance(r, dict):
                arn = _s(r.get("ARN")) or _s(r.get("arn"))
                kind = _s(r.get("type"))
                if arn or kind:
                    name = _arn_name(arn) if arn else None
                    return Resource(type=kind, id=arn, name=name)
    params = rec.get("requestParameters")
    if not isinstance(params, dict):
        return None
    bucket = params.get("bucketName")
    if type(bucket) is str and bucket:
        key = params.get("key")
        if type(key) is str and key:
            return Resource(type="AWS::S3::Object", id=f"arn:aws:s3:::{bucket}/{key}", name=key)
        return Resource(type="AWS::S3::Bucket", id=f"arn:aws:s3:::{bucket}", name=bucket)
    items = params.get("instancesSet")
    if isinstance(items, dict) and isinstance(items.get("items"), list) and items["items"]:
        first = items["items"][0]
        iid = _s(first.get("instanceId")) if isinstance(first, dict) else None
        if iid:
            return Resource(type="AWS::EC2::Instance", id=iid, name=iid)
    best: tuple[int, str, str] | None = None
    for key, v in params.items():  # a handful of keys; the table is longer
        hit = _PARAM_RANK.get(key)
        if hit is not None and type(v) is str and v and (best is None or hit[0] < best[0]):
            best = (hit[0], hit[1], v)
    if best is None:
        return None
    _, kind, v = best
    return Resource(type=kind, id=v, name=_arn_name(v) if v.startswith("arn:") else v)


def _arn_name(arn: str) -> str | None:
    tail = arn.rsplit(":", 1)[-1]
    return tail.rsplit("/", 1)[-1] or None


# --------------------------------------------------------------------------- mapping


def map_cloudtrail_record(rec: dict[str, Any]) -> Event:
    """One CloudTrail record as an :class:`Event`; :class:`SourceError` if it cannot be
    mapped. The record is kept (not copied) under ``metadata.cloudtrail``."""
    return _map(rec, False)


def _map(rec: Any, fits: bool) -> Event:
    if type(rec) is not dict:
        raise _fail(f"expected a JSON object, got {type(rec).__name__}", rec)
    source = rec.get("eventSource")
    if type(source) is not str or not source:
        raise _fail("eventSource is missing", rec)
    name = rec.get("eventName")
    if type(name) is not str or not name:
        raise _fail("eventName is missing", rec)
    identity = rec.get("userIdentity")
    if type(identity) is not dict:
        raise _fail("userIdentity is missing", rec)
    actor_id = (
        _s(identity.get("arn"))
        or _s(identity.get("principalId"))
        or _s(identity.get("invokedBy"))
        or _s(identity.get("userName"))
        or _s(identity.get("accountId"))
    )
    if actor_id is None:
        raise _fail("userIdentity has no arn, principalId, invokedBy, userName or accountId", rec)
    if len(actor_id) > 1024:
        raise _fail("userIdentity id is longer than 1024 characters", rec)

    read_only = rec.get("readOnly")
    action, category = _classify(source, name, read_only if type(read_only) is bool else None)

    when: str | None = None
    for key in ("eventTime", "@timestamp"):
        t = rec.get(key)
        if isinstance(t, str):
            try:
                when = cloudtrail_time(t)
            except ValueError as exc:
                raise _fail(f"{key}: {exc}", rec) from None
            break

    eid = rec.get("eventID")
    if type(eid) is str and len(eid) == 36 and _UUID.fullmatch(eid):
        eid = eid.lower()  # re-ingesting a file yields the same ids
    else:
        try:
            eid = _derived_id(orjson.dumps(rec, option=orjson.OPT_SORT_KEYS))
        except TypeError:  # not from JSON: keys that are not text, integers beyond 64 bits
            eid = _derived_id(repr(rec).encode())

    meta: dict[str, Any] = {"cloudtrail": rec}
    src_ip = rec.get("sourceIPAddress")
    if type(src_ip) is not str or not src_ip:
        src_ip = None
    ip = src_ip if src_ip and is_ip(src_ip) else None
    if src_ip and ip is None:
        meta["source_address"] = src_ip  # "AWS Internal", "ec2.amazonaws.com", ...
    account = rec.get("recipientAccountId")
    if type(account) is str and account:
        meta["account"] = account
    region = rec.get("awsRegion")
    if type(region) is str and region:
        meta["region"] = region
    if not fits:
        try:
            fit_metadata(meta, drop_first=BODY_PATHS)
        except TooLarge as exc:
            raise _fail(str(exc), rec) from None

    issuer = _issuer(identity)
    actor_name = _s(identity.get("userName")) or (_s(issuer.get("userName")) if issuer else None)
    ua = _s(rec.get("userAgent"))
    reason = _s(rec.get("errorMessage"))
    return Event(
        actor=Actor(
            id=actor_id,
            type=cloudtrail_actor_type(identity, src_ip),
            name=actor_name,
            ip=ip,
            user_agent=ua[:8192] if ua else None,
        ),
        action=action,
        id=eid,
        time=when,
        category=category,  # type: ignore[arg-type]
        resource=_resource(rec),
        outcome=cloudtrail_outcome(rec.get("errorCode"), rec),  # type: ignore[arg-type]
        reason=reason[:8192] if reason else None,
        source=Source(service=source, request_id=_s(rec.get("requestID"))),
        metadata=meta,
    )


# --------------------------------------------------------------------------- files


def _inflate(data: bytes) -> bytes:
    d = zlib.decompressobj(wbits=47)  # gzip or zlib header
    out = d.decompress(data, MAX_DECOMPRESSED_BYTES)
    if d.unconsumed_tail:
        raise ValueError(f"decompresses to more than {MAX_DECOMPRESSED_BYTES} bytes")
    if not d.eof:
        raise ValueError("truncated gzip data")
    return out


def parse_cloudtrail(data: bytes) -> tuple[list[Event], list[SourceError]]:
    """Events from a CloudTrail file (plain or gzip), a JSON array or JSON Lines.

    A record that cannot be mapped becomes a :class:`SourceError` holding that record's
    JSON; a document that cannot be read at all becomes one error holding ``data``.
    """
    if data[:2] == b"\x1f\x8b":
        try:
            data = _inflate(data)
        except (ValueError, zlib.error) as exc:
            return [], [SourceError(SOURCE, f"bad gzip data: {exc}", bytes(data))]
    body = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not body:
        return [], []
    if body[:1] == b"[":
        try:
            return _map_raw(_array_decoder.decode(body))
        except msgspec.DecodeError as exc:
            return [], [SourceError(SOURCE, f"malformed JSON: {exc}", bytes(data))]
    if body[:1] == b"{":
        try:
            return _map_raw(_document_decoder.decode(body).Records)
        except msgspec.ValidationError:
            pass  # an object without Records: perhaps one record, perhaps JSON Lines
        except msgspec.DecodeError:
            pass
        if b"\n" in body.rstrip():
            try:
                one = orjson.loads(body)  # one record, pretty-printed over many lines
            except orjson.JSONDecodeError:
                return _parse_lines(body)
            got = _map_bytes(orjson.dumps(one)) if type(one) is dict else None
            if got is not None:
                return ([], [got]) if isinstance(got, SourceError) else ([got], [])
        return _parse_lines(body)
    return [], [
        SourceError(
            SOURCE, "not JSON: expected a Records document, an array or JSON Lines", bytes(data)
        )
    ]


class _Document(msgspec.Struct):
    Records: list[msgspec.Raw]


_document_decoder = msgspec.json.Decoder(_Document)
_array_decoder = msgspec.json.Decoder(list[msgspec.Raw])


def _map_raw(records: list[msgspec.Raw]) -> tuple[list[Event], list[SourceError]]:
    events: list[Event] = []
    errors: list[SourceError] = []
    for raw in records:
        got = _map_bytes(bytes(raw))
        if isinstance(got, SourceError):
            errors.append(got)
        else:
            events.append(got)
    return events, errors


def _map_bytes(raw: bytes) -> Event | SourceError:
    """One record's JSON, decoded and mapped; the error keeps ``raw`` as it came."""
    if len(raw) > MAX_RECORD_BYTES:
        return SourceError(SOURCE, f"record is {len(raw)} bytes, more than {MAX_RECORD_BYTES}", raw)
    fits = len(raw) <= _SMALL
    rec: Any = None
    if fits:
        try:
            rec = _record_decoder.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError):
            fits = False
    if rec is None:
        try:
            rec = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return SourceError(SOURCE, f"malformed JSON: {exc}", raw)
    repeated = duplicate_key_reason(raw, rec)  # the record is kept in the leaf: one reading only
    if repeated is not None:
        return SourceError(SOURCE, repeated, raw)
    try:
        return _map(rec, fits)
    except SourceError as exc:
        return SourceError(SOURCE, exc.reason, raw)


def _parse_lines(body: bytes) -> tuple[list[Event], list[SourceError]]:
    events: list[Event] = []
    errors: list[SourceError] = []
    for line in body.split(b"\n"):
        line = line.strip()
        if not line:
            continue
        if line[:1] == b"{" and b'"Records"' in line:
            try:
                doc = _document_decoder.decode(line)
            except (msgspec.ValidationError, msgspec.DecodeError):
                pass
            else:
                more, bad = _map_raw(doc.Records)
                events.extend(more)
                errors.extend(bad)
                continue
        got = _map_bytes(line)
        if isinstance(got, SourceError):
            errors.append(got)
        else:
            events.append(got)
    return events, errors
