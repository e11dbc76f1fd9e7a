//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format
//! (`prometheus-client`): one registry per server, so that each test's server counts on its
//! own. Counters and histograms are updated where things happen (the writer's thread, the
//! sockets, the HTTP layer, the bots); the gauges that describe the present (sockets open,
//! users online, the writer's queue) are read from the server when the page is scraped.
//!
//! `/metrics` answers a request from the machine itself (a loopback peer that no proxy
//! forwarded) or one carrying `Authorization: Bearer <--metrics-token>`; anyone else gets
//! `403`.

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route's pattern (`/api/rooms/{id}/join`), never the path with its ids: the
    /// number of series stays bounded. `other` for paths no route matched.
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WhatLabels {
    pub what: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub messages_committed: Counter,
    pub commit_batch_size: Histogram,
    pub commit_seconds: Histogram,
    /// Checkpoints of SQLite's WAL into the database file, run beside the message writer.
    pub wal_checkpoint_seconds: Histogram,
    /// From the commit to the batch handed to every member's connection.
    pub fanout_seconds: Histogram,
    /// Connections that fell behind and were told to resync.
    pub resyncs: Counter,
    pub http_requests: Family<RouteLabels, Counter>,
    pub signin_failures: Counter,
    /// Refusals for going too fast, by what was limited (`send`, `http`).
    pub rate_limited: Family<WhatLabels, Counter>,
    /// Bot replies, by outcome (`model`, `offline`, `fallback`, `busy`, `quota`, `away`).
    pub bot_replies: Family<WhatLabels, Counter>,
    /// Analytics events dropped because their queue was full.
    pub analytics_dropped: Counter,
    sockets: Gauge,
    users_online: Gauge,
    writer_queue: Gauge,
}

/// What the gauges show, read when `/metrics` is scraped.
pub struct Now {
    pub sockets: usize,
    pub users_online: usize,
    pub writer_queue: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("messenger");
        let messages_committed = Counter::default();
        registry.register(
            "messages_committed",
            "Messages committed to the store (each acknowledged after it)",
            messages_committed.clone(),
        );
        // 1 to 512 messages per commit.
        let commit_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "commit_batch_size",
            "Messages per group commit",
            commit_batch_size.clone(),
        );
        // 0.1 ms to ~3 s.
        let commit_seconds = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        registry.register(
            "commit_seconds",
            "Time of one group commit, fsync included",
            commit_seconds.clone(),
        );
        let wal_checkpoint_seconds = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        registry.register(
            "wal_checkpoint_seconds",
            "Time of one checkpoint of the SQLite WAL into the database file, beside the message writer",
            wal_checkpoint_seconds.clone(),
        );
        let fanout_seconds = Histogram::new(exponential_buckets(0.000_01, 2.0, 16));
        registry.register(
            "fanout_seconds",
            "Time from a commit to its messages handed to every member's connection",
            fanout_seconds.clone(),
        );
        let resyncs = Counter::default();
        registry.register(
            "resyncs",
            "Connections that fell behind in a conversation and were told to resync",
            resyncs.clone(),
        );
        let http_requests = Family::<RouteLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route pattern, method and status",
            http_requests.clone(),
        );
        let signin_failures = Counter::default();
        registry.register(
            "signin_failures",
            "Sign-ins refused for a wrong username or password",
            signin_failures.clone(),
        );
        let rate_limited = Family::<WhatLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests and frames refused for going too fast",
            rate_limited.clone(),
        );
        let bot_replies = Family::<WhatLabels, Counter>::default();
        registry.register(
            "bot_replies",
            "AI contact replies by outcome",
            bot_replies.clone(),
        );
        let analytics_dropped = Counter::default();
        registry.register(
            "analytics_dropped",
            "Analytics events dropped because their queue was full (delivery never waits for them)",
            analytics_dropped.clone(),
        );
        let sockets = Gauge::default();
        registry.register("sockets", "WebSocket connections open", sockets.clone());
        let users_online = Gauge::default();
        registry.register(
            "users_online",
            "Users with at least one connection open",
            users_online.clone(),
        );
        let writer_queue = Gauge::default();
        registry.register(
            "writer_queue",
            "Messages waiting for the writer",
            writer_queue.clone(),
        );
        Self {
            registry,
            messages_committed,
            commit_batch_size,
            commit_seconds,
            wal_checkpoint_seconds,
            fanout_seconds,
            resyncs,
            http_requests,
            signin_failures,
            rate_limited,
            bot_replies,
            analytics_dropped,
            sockets,
            users_online,
            writer_queue,
        }
    }

    /// One group commit of `size` messages that took `took`.
    pub fn committed(&self, size: usize, took: Duration) {
        self.messages_committed.inc_by(size as u64);
        self.commit_batch_size.observe(size as f64);
        self.commit_seconds.observe(took.as_secs_f64());
    }

    /// The page, with the gauges set to `now`.
    pub fn render(&self, now: Now) -> String {
        self.sockets.set(now.sockets as i64);
        self.users_online.set(now.users_online as i64);
        self.writer_queue.set(now.writer_queue as i64);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_metric_with_its_value() {
        let m = Metrics::new();
        m.committed(3, Duration::from_millis(2));
        m.committed(5, Duration::from_millis(4));
        m.http_requests
            .get_or_create(&RouteLabels {
                route: "/api/rooms/{id}/join".into(),
                method: "POST".into(),
                status: 200,
            })
            .inc();
        let page = m.render(Now {
            sockets: 4,
            users_online: 2,
            writer_queue: 1,
        });
        for line in [
            "messenger_messages_committed_total 8",
            "messenger_commit_batch_size_count 2",
            "messenger_sockets 4",
            "messenger_users_online 2",
            "messenger_writer_queue 1",
            r#"messenger_http_requests_total{route="/api/rooms/{id}/join",method="POST",status="200"} 1"#,
        ] {
            assert!(page.lines().any(|l| l == line), "{line} in\n{page}");
        }
        assert!(page.ends_with("# EOF\n"));
    }
}
