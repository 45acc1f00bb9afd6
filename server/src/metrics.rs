//! Prometheus metrics at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

pub struct Metrics {
    registry: Registry,
    pub connections: Gauge,
    pub jobs: Family<StateLabel, Gauge>,
    pub bytes_validated: Counter,
    pub validation_seconds: Histogram,
    /// Messages from Redis dropped unread: no valid signature (see `hub::redis_bus`).
    pub bus_rejected: Counter,
    /// Events this node could not queue for the other nodes (see `hub::redis_bus`).
    pub bus_dropped: Counter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("datavista");
        let connections = Gauge::default();
        let jobs = Family::<StateLabel, Gauge>::default();
        let bytes_validated = Counter::default();
        let validation_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 16));
        registry.register(
            "websocket_connections",
            "Open WebSocket connections",
            connections.clone(),
        );
        registry.register("jobs", "Jobs by state", jobs.clone());
        registry.register(
            "validated_bytes",
            "Bytes run through the validator",
            bytes_validated.clone(),
        );
        registry.register(
            "validation_duration_seconds",
            "Time from a validation's start to its report",
            validation_seconds.clone(),
        );
        let bus_rejected = Counter::default();
        registry.register(
            "bus_rejected_messages",
            "Messages from Redis dropped unread: missing or bad signature",
            bus_rejected.clone(),
        );
        let bus_dropped = Counter::default();
        registry.register(
            "bus_dropped_messages",
            "Messages for the other nodes dropped: the queue to Redis was full",
            bus_dropped.clone(),
        );
        Metrics {
            registry,
            connections,
            jobs,
            bytes_validated,
            validation_seconds,
            bus_rejected,
            bus_dropped,
        }
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
