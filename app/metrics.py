"""Prometheus metrics (prometheus-client, text exposition format 0.0.4).

Counters and the histogram live in the process's default registry, so each
process counts what it did itself: a web process serves them on ``/metrics``
(``app/ops.py``), a separate ``retouch worker`` process on its own port
(:func:`serve_in_background`, ``RETOUCH_METRICS_PORT``). Prometheus scrapes
every process and sums (``sum by (backend, outcome) (rate(retouch_turns_total[5m]))``).
The queue depth is not counted but read from the database at scrape time,
so every process that has ``sessions`` reports the same figure: take ``max``.

Names follow Prometheus's naming guide: a ``_total`` suffix for counters
(added by the client library), base units (seconds).
"""
from __future__ import annotations

import logging
import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from app.models import PENDING_STATUSES, Turn

log = logging.getLogger("retouch.metrics")

#: Turn latency buckets in seconds: the ``local`` backend ends in well under a
#: second, OpenAI's image models take 10 to 120 s, a diffusers model on a CPU minutes.
TURN_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200)

TURNS = Counter("retouch_turns", "Turns that ended, by backend and outcome (succeeded, answered, declined, failed, cancelled).",
                ["backend", "outcome"])
TURN_SECONDS = Histogram("retouch_turn_duration_seconds", "Time from a turn's start to its end, in seconds.",
                         ["backend"], buckets=TURN_SECONDS_BUCKETS)
RUNS_LOST = Counter("retouch_turn_runs_lost", "Runs of a turn whose lease another worker took over "
                    "(the turn itself ends, and is counted, there).", ["backend"])
PARTIAL_FRAMES_STORED = Counter("retouch_partial_frames_stored", "Partial images received from backends and stored.")
PARTIAL_FRAMES_SENT = Counter("retouch_partial_frames_sent", "Partial images served to pages and API clients.")


def turn_finished(backend: str, outcome: str, seconds: float) -> None:
    """Count a turn that ended: ``backend`` its backend's name, ``outcome``
    its final status (``succeeded``, ``answered``, ``declined``, ``failed`` or ``cancelled``), ``seconds``
    from its start (claim) to its end. Negative durations count as 0."""
    TURNS.labels(backend=backend, outcome=outcome).inc()
    TURN_SECONDS.labels(backend=backend).observe(max(0.0, seconds))


def turn_ended(outcome: str, backend: str, seconds: float) -> None:
    """The worker's ``on_ended`` hook (``TurnRunner(on_ended=...)`` in
    ``app/worker.py``), called once per run: a final ``outcome`` counts as
    :func:`turn_finished`; ``lost`` (the lease was taken over, another run
    ends the turn) counts in ``retouch_turn_runs_lost_total`` only, so no
    turn is counted twice. ``seconds``: from claim to end."""
    if outcome == "lost":
        RUNS_LOST.labels(backend=backend).inc()
    else:
        turn_finished(backend, outcome, seconds)


def partial_frame_stored() -> None:
    """Count one partial image a backend sent and the worker stored."""
    PARTIAL_FRAMES_STORED.inc()


def partial_frame_sent() -> None:
    """Count one partial image served by the partial-image routes (``app/api.py``)."""
    PARTIAL_FRAMES_SENT.inc()


class QueueDepth:
    """A collector that reads ``retouch_queue_depth{status="queued"|"running"}``
    from the database at each scrape (a failed read is logged and left out)."""

    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    def describe(self):
        return [GaugeMetricFamily("retouch_queue_depth", "Turns queued or running now, from the database.")]

    def collect(self):
        family = GaugeMetricFamily("retouch_queue_depth", "Turns queued or running now, from the database.",
                                   labels=["status"])
        try:
            counts = queue_depth(self.sessions)
        except Exception:  # the database is down: /readyz says so; metrics stay up
            log.exception("could not read the queue depth")
            return
        for status, count in counts.items():
            family.add_metric([status], count)
        yield family


def queue_depth(sessions: sessionmaker) -> dict[str, int]:
    """Turns by status, ``{"queued": n, "running": m}``, counted in the
    database (one ``GROUP BY`` over the ``status`` index). Raises what the
    database driver raises."""
    with sessions() as session:
        rows = session.execute(select(Turn.status, func.count()).where(Turn.status.in_(PENDING_STATUSES))
                               .group_by(Turn.status)).all()
    counts = dict.fromkeys(PENDING_STATUSES, 0)
    counts.update({status: int(n) for status, n in rows})
    return counts


def render(sessions: sessionmaker | None = None) -> bytes:
    """This process's metrics in the text format, plus the queue depth
    read now from ``sessions``' database when given."""
    out = generate_latest(REGISTRY)
    if sessions is not None:
        registry = CollectorRegistry()
        registry.register(QueueDepth(sessions))
        out += generate_latest(registry)
    return out


_served_lock = threading.Lock()
_served_port: int | None = None


def serve_in_background(port: int, sessions: sessionmaker | None = None, addr: str = "0.0.0.0") -> None:
    """Serve this process's metrics on ``addr:port`` from a daemon thread
    (``prometheus_client.start_http_server``), for a ``retouch worker``
    process that has no web server (``RETOUCH_METRICS_PORT``); with
    ``sessions``, the queue depth too. Once per process: later calls do
    nothing. Raises OSError when the port is taken."""
    global _served_port
    with _served_lock:
        if _served_port is not None:
            return
        registry = CollectorRegistry()  # the process's metrics plus the queue depth; REGISTRY stays as it is
        registry.register(REGISTRY)
        if sessions is not None:
            registry.register(QueueDepth(sessions))
        start_http_server(port, addr=addr, registry=registry)
        _served_port = port
