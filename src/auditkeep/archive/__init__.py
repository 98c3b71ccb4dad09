"""The WORM archive: contiguous ranges of a tenant's log as segments that prove themselves
against a signed checkpoint, on a directory or S3-compatible storage with Object Lock."""

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
from auditkeep.archive.target import ArchiveTargetError, DirTarget, S3Target, Target, open_target

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
