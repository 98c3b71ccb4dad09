"""The policy steps in order: capture policy first, then redaction, then any extra
processors; what comes out is what the ledger hashes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from auditkeep.model import Event
from auditkeep.policy.capture import CapturePolicy, _yaml
from auditkeep.policy.redact import Redactor
from auditkeep.policy.types import PolicyError, Processor


class Pipeline:
    """``process(event, source)``: the capture policy decides (and may drop the event or
    its bodies), then each processor runs in turn; any step may return None to drop it.

    Events are changed in place. Every source, and events from the SDK (source ``api``),
    go through the same pipeline before anything is hashed.
    """

    def __init__(
        self,
        policy: CapturePolicy | None = None,
        processors: Sequence[Processor] = (),
    ) -> None:
        self.policy = policy if policy is not None else CapturePolicy()
        self.processors = tuple(processors)

    @classmethod
    def default(cls) -> Pipeline:
        """Keep everything (level ``full``), redact secrets with every built-in detector."""
        return cls(CapturePolicy(), [Redactor()])

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> Pipeline:
        """From a policy file's mapping: ``capture`` and ``redaction`` sections, both
        optional. Without ``redaction`` the built-in detectors still run; ``redaction:
        false`` turns redaction off."""
        if not isinstance(config, Mapping):
            raise PolicyError("", "a policy file is a mapping with capture and redaction sections")
        unknown = set(config) - {"capture", "redaction"}
        if unknown:
            raise PolicyError("", f"unknown section(s) {', '.join(sorted(map(str, unknown)))}")
        policy = CapturePolicy.from_dict(config.get("capture") or {})
        red = config.get("redaction", {})
        processors: list[Processor] = [] if red is False else [Redactor.from_dict(red or {})]
        return cls(policy, processors)

    @classmethod
    def from_yaml(cls, text: str) -> Pipeline:
        return cls.from_dict(_yaml(text))

    @classmethod
    def load(cls, path: str | Path) -> Pipeline:
        return cls.from_yaml(Path(path).read_text(encoding="utf-8"))

    def scrub(self, raw: bytes) -> bytes:
        """Raw bytes (a record a source could not read) with the secrets that this pipeline's
        detectors find replaced, before they are kept anywhere. Bytes that are not UTF-8 pass
        through unchanged; the text around them is still scrubbed."""
        redactors = [p for p in self.processors if isinstance(p, Redactor)]
        if not redactors:
            return raw
        text = raw.decode("utf-8", "surrogateescape")
        out = text
        for r in redactors:
            out = r.redact_text(out)
        return raw if out == text else out.encode("utf-8", "surrogateescape")

    def scrub_text(self, text: str) -> str:
        return self.scrub(text.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape")

    def process(self, event: Event, source: str) -> Event | None:
        out = self.policy.apply(event, source)
        for step in self.processors:
            if out is None:
                return None
            out = step(out, source)
        return out

    __call__ = process

    def process_batch(self, events: Iterable[Event], source: str) -> list[Event]:
        """The events kept, in order."""
        return self.process_kept(list(events), source)[0]

    def process_kept(self, events: Sequence[Event], source: str) -> tuple[list[Event], list[int]]:
        """What :meth:`process` of each event gives, as the events kept and their positions
        in ``events``. A redactor takes the kept events as one batch (see
        :meth:`Redactor.redact_many`); any other step runs event by event."""
        apply = self.policy.apply
        kept: list[Event] = []
        positions: list[int] = []
        for i, ev in enumerate(events):
            out = apply(ev, source)
            if out is not None:
                kept.append(out)
                positions.append(i)
        for step in self.processors:
            if type(step) is Redactor:  # never drops, changes in place
                step.redact_many(kept)
                continue
            still: list[Event] = []
            where: list[int] = []
            for ev, pos in zip(kept, positions, strict=True):
                out = step(ev, source)
                if out is not None:
                    still.append(out)
                    where.append(pos)
            kept, positions = still, where
        return kept, positions
