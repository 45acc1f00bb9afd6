//! Prometheus metrics at `/metrics`, and the job counts behind it and `/healthz`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datavista_shared::protocol::JobState;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// How long a count of jobs per state is served before it is made again.
pub const COUNTS_FRESH_FOR: Duration = Duration::from_secs(2);

struct Counts {
    at: Instant,
    result: Result<Arc<Vec<(String, u64)>>, String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

pub struct Metrics {
    registry: Registry,
    /// Jobs per state, counted at most once per [`COUNTS_FRESH_FOR`]: counting scans the jobs
    /// table, and `/metrics` and `/healthz` are open to anyone, as often as they like.
    counts: tokio::sync::Mutex<Option<Counts>>,
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
            counts: tokio::sync::Mutex::new(None),
            connections,
            jobs,
            bytes_validated,
            validation_seconds,
            bus_rejected,
            bus_dropped,
        }
    }

    /// Jobs per state, as counted at most [`COUNTS_FRESH_FOR`] ago, each state named as its
    /// `state` label shows it; one request at a time counts again, the others wait for its
    /// answer. An error means the store did not answer.
    pub async fn job_counts(
        &self,
        count: impl FnOnce() -> tokio::task::JoinHandle<Result<Vec<(JobState, u64)>, String>>,
    ) -> Result<Arc<Vec<(String, u64)>>, String> {
        let mut cached = self.counts.lock().await;
        if let Some(counts) = cached
            .as_ref()
            .filter(|c| c.at.elapsed() < COUNTS_FRESH_FOR)
        {
            return counts.result.clone();
        }
        let result = match count().await {
            Ok(Ok(counts)) => Ok(Arc::new(
                counts
                    .into_iter()
                    .map(|(state, count)| (state.as_str().to_owned(), count))
                    .collect(),
            )),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(e.to_string()),
        };
        *cached = Some(Counts {
            at: Instant::now(),
            result: result.clone(),
        });
        result
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// However many ask at once, the store counts once per window.
    #[tokio::test]
    async fn job_counts_are_counted_once_however_many_ask() {
        let metrics = Arc::new(Metrics::new());
        let counted = Arc::new(AtomicUsize::new(0));
        let asks: Vec<_> = (0..200)
            .map(|_| {
                let (metrics, counted) = (metrics.clone(), counted.clone());
                tokio::spawn(async move {
                    let count = move || {
                        tokio::task::spawn_blocking(move || {
                            counted.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                            Ok(vec![(JobState::Valid, 3)])
                        })
                    };
                    metrics.job_counts(count).await.unwrap()
                })
            })
            .collect();
        for ask in asks {
            assert_eq!(*ask.await.unwrap(), [("valid".to_owned(), 3)]);
        }
        assert_eq!(counted.load(Ordering::SeqCst), 1);
    }
}
