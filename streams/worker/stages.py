"""The worker's two stages around one ``Pipeline`` (Faust-free, so recovery and tests drive them too).

Each stage's state is a prefix of one Kafka log: a partition window (stage A) is the state after
input records ``[0, next)`` of its partition; stage B is the state after changes-topic records
``[0, next)``. ``Pipeline.next_offsets`` holds ``next`` for each. A record below ``next`` is
already in the state (a redelivery after a rebalance or a restart) and is skipped; when a worker is
handed a partition whose state is behind the offset its group delivers from (another worker went on
with it), it first re-reads the gap with publishing off (``streams/worker/recovery.py``): the worker that
processed those records published what they produced.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from streams.runtime.changes import ChangeError, ChangeReader
from streams.runtime.flagged import FlaggedAccounts
from streams.runtime.pipeline import Emitted, Pipeline, Record
from streams.runtime.verdicts import apply_verdict_value

log = logging.getLogger("fraudgraph")


def fresh(pipeline: Pipeline, records: Sequence[Record]) -> list[Record]:
    """The records the state does not hold yet."""
    offsets = pipeline.next_offsets
    return [r for r in records if r.offset >= offsets.get((r.topic, r.partition), 0)]


class GlobalStage:
    """Stage B's input: decodes the changes topic and applies it to the pipeline's engine."""

    def __init__(self, pipeline: Pipeline, topic: str, verdict_key: bytes | None = None) -> None:
        self.pipeline = pipeline
        self.topic = topic
        self.verdict_key = verdict_key
        self.reader = ChangeReader()

    def reset(self) -> None:
        """Another worker owns stage B now: forget it (it is rebuilt from the topic if it comes back)."""
        self.pipeline.engine.reset_global()
        self.pipeline.next_offsets.pop((self.topic, 0), None)
        self.pipeline.applied_verdicts.clear()
        self.pipeline.flagged_feed = FlaggedAccounts()
        self.reader = ChangeReader()

    def apply(self, record: Record) -> tuple[Emitted, str | None]:
        """One record of the changes topic: what to publish, and a verdict's outcome (None otherwise)."""
        pipeline = self.pipeline
        pipeline.next_offsets[(record.topic, record.partition)] = record.offset + 1
        try:
            change = self.reader.read(record.value, list(record.headers))
        except ChangeError as exc:  # only fraudgraph writes this topic: a bug or a foreign writer
            log.error("changes topic record %s[%d]@%d skipped: %s", record.topic, record.partition, record.offset, exc)
            return Emitted(), None
        if change is None:
            return Emitted(), None
        if change.kind == "verdict":
            outcome, emitted = apply_verdict_value(pipeline, change.value, self.verdict_key)
            return emitted or Emitted(), outcome
        emitted, duplicates = pipeline.apply_change(change)
        if pipeline.metrics is not None and not pipeline.recovering:
            pipeline.metrics.change_records.labels("applied").inc()
            if duplicates:
                pipeline.metrics.duplicate_batches.inc(duplicates)
        return emitted, None

    @property
    def mid_batch(self) -> bool:
        """A batch has some of its parts here (a checkpoint waits until it is whole)."""
        return self.reader.pending > 0
