"""Where segments go: a directory, or S3-compatible object storage (with Object Lock).

A target stores an object whole or not at all, and says so only once it is durable: a
directory writes a temporary file, fsyncs it and links it into place (a link never replaces
an existing file), then fsyncs the directory; S3 answers a PUT only after it stored the
object. Neither ever replaces a segment's object: a segment, once written, stays as it was.
The one rewritable object is a sealed segment's key object (its data key wrapped under the
current master key, :mod:`auditkeep.archive.keys`), written by ``replace``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from auditkeep.errors import ConfigError, StoreError, UserError
from auditkeep.fsutil import fsync_dir

MAX_LIST = 1_000_000


class ArchiveTargetError(StoreError):
    """The archive target failed (the message says which object and why)."""


class Target(Protocol):
    description: str

    def put(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name``, durably; an existing object is never replaced (the
        same bytes again are accepted, other bytes are an error)."""
        ...

    def replace(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name``, durably, replacing what was there (key objects only)."""
        ...

    def get(self, name: str) -> bytes | None: ...

    def exists(self, name: str) -> bool: ...

    def names(self, prefix: str = "") -> list[str]:
        """Names under ``prefix``, sorted."""
        ...

    def retention(self, name: str) -> str | None:
        """The object's lock (``COMPLIANCE until ...``), if any."""
        ...


class DirTarget:
    """Segments as files below a directory, made read-only once written."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.description = str(self.root)

    def _path(self, name: str) -> Path:
        parts = name.split("/")
        if not name or any(p in ("", ".", "..") for p in parts):
            raise UserError(f"bad archive object name {name!r}")
        return self.root.joinpath(*parts)

    def put(self, name: str, data: bytes) -> None:
        def place(tmp: Path, path: Path) -> None:
            try:
                os.link(tmp, path)  # never replaces: a crash leaves either nothing or the whole file
            except FileExistsError:
                if path.read_bytes() != data:
                    raise ArchiveTargetError(f"{path} exists with other content; an archive object is never replaced") from None

        self._write(name, data, place)

    def replace(self, name: str, data: bytes) -> None:
        # atomic: a crash leaves the old object or the new one
        self._write(name, data, os.replace)

    def _write(self, name: str, data: bytes, place: Callable[[Path, Path], None]) -> None:
        """Write ``data`` durably to a read-only temporary file beside the object; ``place``
        puts it at the object's path."""
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o444)
            place(tmp, path)
            fsync_dir(path.parent)
        except OSError as exc:
            raise ArchiveTargetError(f"cannot write {path}: {exc.strerror or exc}") from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def get(self, name: str) -> bytes | None:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ArchiveTargetError(f"cannot read {self._path(name)}: {exc.strerror or exc}") from None

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def names(self, prefix: str = "") -> list[str]:
        # only the folder the prefix names is walked (a tenant's), not the whole archive
        base = self.root.joinpath(*prefix.split("/")[:-1]) if "/" in prefix else self.root
        if not base.is_dir():
            return []
        out = []
        for p in base.rglob("*"):
            if p.is_file() and not p.name.startswith("."):
                rel = p.relative_to(self.root).as_posix()
                if rel.startswith(prefix):
                    out.append(rel)
                    if len(out) > MAX_LIST:
                        raise ArchiveTargetError(f"more than {MAX_LIST} objects under {self.root}")
        return sorted(out)

    def retention(self, name: str) -> str | None:
        return None


class S3Target:
    """Segments as objects of an S3-compatible bucket; with ``lock_days``, each is written
    with Object Lock (mode ``lock_mode``, retain-until = upload time + ``lock_days``), so
    nobody (in COMPLIANCE mode, not even the account's root) can delete or replace that
    version before then. The bucket must have been created with Object Lock enabled."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint: str | None = None,
        region: str | None = None,
        lock_days: int = 0,
        lock_mode: str = "COMPLIANCE",
        client: Any = None,
        sse: str | None = None,
        kms_key_id: str | None = None,
    ) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ConfigError("an S3 archive target needs boto3: pip install 'auditkeep[s3]'") from None
        self.bucket = bucket
        self.prefix = prefix
        self.lock_days = lock_days
        self.lock_mode = lock_mode
        self.sse = sse
        self.kms_key_id = kms_key_id
        self.description = f"s3://{bucket}/{prefix}" + (f" at {endpoint}" if endpoint else "")
        self.client = client or boto3.client(
            "s3", endpoint_url=endpoint, region_name=region,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}),
        )

    def _error(self, what: str, exc: Exception) -> ArchiveTargetError:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        return ArchiveTargetError(f"{self.description}: {what}: {code or exc}")

    def put(self, name: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.prefix + name
        digest = hashlib.sha256(data).hexdigest()
        args: dict[str, Any] = {
            "Bucket": self.bucket, "Key": key, "Body": data, "Metadata": {"sha256": digest},
            "ChecksumAlgorithm": "SHA256",
        }
        if self.sse:
            args["ServerSideEncryption"] = self.sse
            if self.kms_key_id:
                args["SSEKMSKeyId"] = self.kms_key_id
        if self.lock_days:
            until = dt.datetime.now(dt.UTC) + dt.timedelta(days=self.lock_days)
            args["ObjectLockMode"] = self.lock_mode
            args["ObjectLockRetainUntilDate"] = until
        try:
            head = self._head(key)
            if head is not None:
                if head.get("Metadata", {}).get("sha256") == digest:
                    return  # the same bytes are there already (a run killed after this PUT)
                raise ArchiveTargetError(f"{self.description}{name} exists with other content; never replaced")
            self.client.put_object(**args)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(f"cannot store {name}", exc) from None

    def replace(self, name: str, data: bytes) -> None:
        """A new version of the object, without Object Lock (the bucket's default retention,
        if it has one, still applies to it); then the object's older versions are deleted,
        those a lock still holds excepted (they stay until it expires)."""
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.prefix + name
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": data, "ChecksumAlgorithm": "SHA256"}
        if self.sse:
            args["ServerSideEncryption"] = self.sse
            if self.kms_key_id:
                args["SSEKMSKeyId"] = self.kms_key_id
        try:
            version = self.client.put_object(**args).get("VersionId")
            if version is None:
                return  # an unversioned bucket: the object was replaced
            pages = self.client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=key)
            old = [v["VersionId"] for page in pages for v in page.get("Versions", [])
                   if v["Key"] == key and v["VersionId"] != version]
        except (BotoCoreError, ClientError) as exc:
            raise self._error(f"cannot store {name}", exc) from None
        for v in old:
            with contextlib.suppress(ClientError):  # a locked version stays until its retention ends
                self.client.delete_object(Bucket=self.bucket, Key=key, VersionId=v)

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key)
            return head
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def get(self, name: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read()
            return body
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error(f"cannot read {name}", exc) from None
        except BotoCoreError as exc:
            raise self._error(f"cannot read {name}", exc) from None

    def exists(self, name: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._head(self.prefix + name) is not None
        except (BotoCoreError, ClientError) as exc:
            raise self._error(f"cannot look up {name}", exc) from None

    def names(self, prefix: str = "") -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        out: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    out.append(obj["Key"][len(self.prefix) :])
                if len(out) > MAX_LIST:
                    raise ArchiveTargetError(f"more than {MAX_LIST} objects under {self.description}")
        except (BotoCoreError, ClientError) as exc:
            raise self._error("cannot list objects", exc) from None
        return sorted(out)

    def retention(self, name: str) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self._head(self.prefix + name)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(f"cannot look up {name}", exc) from None
        if head is None or not head.get("ObjectLockMode"):
            return None
        until = head.get("ObjectLockRetainUntilDate")
        return f"{head['ObjectLockMode']} until {until.isoformat() if until else '?'}"


def open_target(settings: Any) -> Target:
    """The target of an ``[archive]`` table (:class:`auditkeep.config.ArchiveSettings`)."""
    if settings.dir:
        return DirTarget(settings.dir)
    if settings.s3_bucket:
        return S3Target(settings.s3_bucket, settings.s3_prefix, settings.s3_endpoint, settings.s3_region,
                        settings.lock_days, settings.lock_mode, sse=settings.s3_sse, kms_key_id=settings.s3_kms_key_id)
    raise ConfigError("no archive target is configured: set archive.dir or archive.s3_bucket in auditkeep.toml")
