"""The WORM archive: contiguous ranges of a tenant's log as segments that prove themselves
against a signed checkpoint, on a directory or S3-compatible storage with Object Lock.

Its names are loaded on first use (``lazyload``): ``verify`` needs only the restored
directories' check, not the S3 target or the segment builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from auditkeep.lazyload import module_getattr

if TYPE_CHECKING:
    from auditkeep.archive.check import (
        FORMAT,
        SegmentError,
        SegmentReport,
        check_segment,
        check_segment_files,
        read_segment,
        read_segment_files,
    )
    from auditkeep.archive.restore import Restored, restore_segment
    from auditkeep.archive.run import TenantArchive, archived_to, list_segments, run_archive
    from auditkeep.archive.segment import Segment, build_segment
    from auditkeep.archive.target import (
        ArchiveTargetError,
        DirTarget,
        S3Target,
        Target,
        open_target,
    )

_LAZY = {
    "FORMAT": "auditkeep.archive.check",
    "SegmentError": "auditkeep.archive.check",
    "SegmentReport": "auditkeep.archive.check",
    "check_segment": "auditkeep.archive.check",
    "check_segment_files": "auditkeep.archive.check",
    "read_segment": "auditkeep.archive.check",
    "read_segment_files": "auditkeep.archive.check",
    "Restored": "auditkeep.archive.restore",
    "restore_segment": "auditkeep.archive.restore",
    "TenantArchive": "auditkeep.archive.run",
    "archived_to": "auditkeep.archive.run",
    "list_segments": "auditkeep.archive.run",
    "run_archive": "auditkeep.archive.run",
    "Segment": "auditkeep.archive.segment",
    "build_segment": "auditkeep.archive.segment",
    "ArchiveTargetError": "auditkeep.archive.target",
    "DirTarget": "auditkeep.archive.target",
    "S3Target": "auditkeep.archive.target",
    "Target": "auditkeep.archive.target",
    "open_target": "auditkeep.archive.target",
}

__getattr__ = module_getattr(__name__, _LAZY)

__all__ = [
    "FORMAT",
    "ArchiveTargetError",
    "DirTarget",
    "Restored",
    "S3Target",
    "Segment",
    "SegmentError",
    "SegmentReport",
    "Target",
    "TenantArchive",
    "archived_to",
    "build_segment",
    "check_segment",
    "check_segment_files",
    "list_segments",
    "open_target",
    "read_segment",
    "read_segment_files",
    "restore_segment",
    "run_archive",
]
