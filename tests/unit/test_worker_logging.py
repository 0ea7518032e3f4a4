"""A broker that is down makes the client libraries log the same error ~100 times a second: the
worker's filter lets each repeated line through once per interval, with a count."""

import logging

from streams.worker.runner import RepeatFilter, RetriedErrorFilter


def record(msg: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("aiokafka", level, __file__, 1, msg, (), None)


def test_a_repeated_line_passes_once_per_interval_with_a_count():
    now = [0.0]
    repeat = RepeatFilter(interval=10.0, clock=lambda: now[0])
    passed = []
    for step in range(1200):  # 110 lines a second for ~11 s
        now[0] = step / 110
        r = record("Unable connect to node with id 1")
        if repeat.filter(r):
            passed.append(r.getMessage())
    assert len(passed) == 2
    assert "similar lines suppressed" in passed[1]
    assert repeat.filter(record("another message")), "other lines are not held back"


def test_errors_the_kafka_client_retries_by_itself_are_warnings_and_others_stay_errors():
    f = RetriedErrorFilter()
    for name, msg in (("aiokafka.consumer.group_coordinator",
                       "Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError"),
                      ("aiokafka.cluster", "Topic fraud-verdicts not found in cluster metadata")):
        r = logging.LogRecord(name, logging.ERROR, __file__, 1, msg, None, None)
        assert f.filter(r) and r.levelno == logging.WARNING and r.levelname == "WARNING"
    kept = logging.LogRecord("aiokafka.consumer", logging.ERROR, __file__, 1, "Unexpected error in fetcher", None, None)
    ours = logging.LogRecord("fraudgraph", logging.ERROR, __file__, 1, "Topic x not found", None, None)
    assert f.filter(kept) and kept.levelno == logging.ERROR
    assert f.filter(ours) and ours.levelno == logging.ERROR
