"""Prometheus metrics of one app instance (own registry, so several apps can live in a process)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.schemas import JobStatus


class _QueueCollector(Collector):
    """Queue depth and outbox backlog, read from the database at scrape time."""

    def __init__(self, depth: Callable[[], dict[str, int]], pending: Callable[[], int]):
        self._depth, self._pending = depth, pending

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily("duet_jobs", "Eval jobs by status", labels=["status"])
        depth = self._depth()
        for status in JobStatus:
            g.add_metric([status], depth.get(status, 0))
        yield g
        yield GaugeMetricFamily("duet_wandb_outbox_pending", "Rows waiting for W&B", value=self._pending())


class LedgerMetrics:
    def __init__(self, depth: Callable[[], dict[str, int]], pending: Callable[[], int]):
        self.registry = registry = CollectorRegistry()
        self.job_latency = Histogram(
            "duet_job_latency_seconds",
            "Enqueue to done",
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, float("inf")),
            registry=registry,
        )
        self.claims = Counter("duet_claims", "Jobs handed to workers", registry=registry)
        self.train_rows = Counter("duet_train_rows_ingested", "Train metric rows stored", registry=registry)
        self.duplicates = Counter(
            "duet_train_rows_duplicate", "Train metric rows ignored as dups", registry=registry
        )
        self.conflicts = Counter("duet_http_409", "Stale-attempt and state conflicts", registry=registry)
        # How workers loaded each scored checkpoint: a growing `rebuild` count means hot swap is not
        # holding (old engine, failed verification) and every checkpoint pays a full engine start.
        self.checkpoint_loads = Counter(
            "duet_checkpoint_loads",
            "Checkpoints loaded by workers, by load mode",
            ["mode"],
            registry=registry,
        )
        registry.register(_QueueCollector(depth, pending))
