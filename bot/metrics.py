"""Prometheus metrics of one server process (``GET /metrics``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


@dataclass
class Metrics:
    """The counters and gauges of one process, in a registry of its own."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.webhook_requests = Counter(
            "nyala_webhook_requests", "Webhook POSTs by HTTP status", ["status"], registry=r
        )
        self.webhook_latency = Histogram(
            "nyala_webhook_ack_seconds",
            "Time from request to acknowledgement",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.inbound_stored = Counter(
            "nyala_inbound_stored", "Inbound messages stored (new)", registry=r
        )
        self.inbound_commits = Counter(
            "nyala_inbound_commits",
            "Transactions that stored webhook deliveries (group commit: several share one)",
            registry=r,
        )
        self.inbound_duplicates = Counter(
            "nyala_inbound_duplicates", "Redelivered inbound messages dropped", registry=r
        )
        self.inbound_processed = Counter(
            "nyala_inbound_processed", "Inbound messages processed", ["outcome"], registry=r
        )
        self.statuses = Counter(
            "nyala_status_updates", "Delivery statuses received", ["status"], registry=r
        )
        self.ignored_updates = Counter(
            "nyala_ignored_updates", "Webhook updates recorded and ignored", registry=r
        )
        self.webhook_errors = Counter(
            "nyala_webhook_errors",
            "Errors WhatsApp reported in webhooks (change- or message-level)",
            ["code"],
            registry=r,
        )
        self.outbound_sent = Counter(
            "nyala_outbound_sent", "Messages accepted by the Graph API", ["kind"], registry=r
        )
        self.outbound_retries = Counter(
            "nyala_outbound_retries", "Send attempts to be retried", ["reason"], registry=r
        )
        self.outbound_failed = Counter(
            "nyala_outbound_failed", "Messages failed permanently", ["code"], registry=r
        )
        self.ambiguous_resends = Counter(
            "nyala_outbound_ambiguous_resends",
            "Resends after a timeout or crash whose outcome was unknown",
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "nyala_outbox_claimed", "Messages claimed by this process's sender", registry=r
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
