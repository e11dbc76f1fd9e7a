//! Real-user monitoring without cookies: `POST /api/rum` takes the web vitals a page measured
//! (`public/rum.js`: LCP, INP, CLS, TTFB) with the page and a coarse device class, and stores
//! them as analytics events (`web_vital`). No cookie is read, and nothing of the user is
//! stored: no id, no address. A beacon is at most 1 KiB of JSON in one exact shape, with
//! values in range; anything else is `400` or `413` and not stored. Each address may send
//! so many a minute (`429` beyond), counted in memory.

use super::client::ClientIp;
use crate::server::{analytics::Event, limits::rate::Rate, state::AppState};
use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    routing::post,
    Router,
};
use serde::Deserialize;

pub const PATH: &str = "/api/rum";
/// Largest beacon body.
const MAX_BYTES: usize = 1024;
/// Beacons per address: a burst of 30, then one every two seconds.
pub const RATE: Rate = Rate {
    per_second: 0.5,
    burst: 30.0,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(PATH, post(beacon))
        .layer(DefaultBodyLimit::max(MAX_BYTES))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Beacon {
    page: String,
    device: String,
    metrics: Vitals,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Vitals {
    lcp: Option<f64>,
    inp: Option<f64>,
    cls: Option<f64>,
    ttfb: Option<f64>,
}

const PAGES: [&str; 4] = ["/", "/app", "/account", "other"];
const DEVICES: [&str; 3] = ["desktop", "mobile", "tablet"];

/// The events of a beacon, or why it is refused.
fn events(body: &[u8]) -> Result<Vec<Event>, &'static str> {
    let b: Beacon = serde_json::from_slice(body).map_err(|_| "not a beacon")?;
    let page = PAGES
        .into_iter()
        .find(|p| *p == b.page)
        .ok_or("unknown page")?;
    let device = DEVICES
        .into_iter()
        .find(|d| *d == b.device)
        .ok_or("unknown device class")?;
    // Milliseconds up to two minutes; CLS is a score, up to 100.
    let millis = |v: f64| v.is_finite() && (0.0..=120_000.0).contains(&v);
    let score = |v: f64| v.is_finite() && (0.0..=100.0).contains(&v);
    let m = &b.metrics;
    let mut out = Vec::new();
    for (name, value, ok) in [
        ("lcp", m.lcp, millis as fn(f64) -> bool),
        ("inp", m.inp, millis),
        ("ttfb", m.ttfb, millis),
        ("cls", m.cls, score),
    ] {
        if let Some(v) = value {
            if !ok(v) {
                return Err("a value out of range");
            }
            out.push(Event::new("web_vital").d1(page).d2(device).d3(name).n1(v));
        }
    }
    if out.is_empty() {
        return Err("no value");
    }
    Ok(out)
}

/// `POST /api/rum`: `204`, or `400` for anything but a beacon, `429` past the address's
/// allowance.
async fn beacon(State(state): State<AppState>, from: ClientIp, body: Bytes) -> StatusCode {
    if !state.beacons.take(from.0, RATE) {
        return StatusCode::TOO_MANY_REQUESTS;
    }
    match events(&body) {
        Ok(events) => {
            for e in events {
                state.analytics.record(e);
            }
            StatusCode::NO_CONTENT
        }
        Err(why) => {
            tracing::debug!(why, "a web-vitals beacon was refused");
            StatusCode::BAD_REQUEST
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beacons_are_read_in_one_exact_shape() {
        let ok =
            br#"{"page":"/app","device":"desktop","metrics":{"lcp":812.5,"cls":0.02,"ttfb":40}}"#;
        let read = events(ok).expect("a beacon");
        let names: Vec<_> = read.iter().filter_map(|e| e.d3.clone()).collect();
        assert_eq!(names, ["lcp", "ttfb", "cls"]);
        for bad in [
            &br#"{"page":"/app","device":"desktop","metrics":{}}"#[..],
            br#"{"page":"/secret","device":"desktop","metrics":{"lcp":1}}"#,
            br#"{"page":"/app","device":"fridge","metrics":{"lcp":1}}"#,
            br#"{"page":"/app","device":"desktop","metrics":{"lcp":-1}}"#,
            br#"{"page":"/app","device":"desktop","metrics":{"lcp":1e9}}"#,
            br#"{"page":"/app","device":"desktop","metrics":{"cls":1000}}"#,
            br#"{"page":"/app","device":"desktop","metrics":{"lcp":1},"user":"ann"}"#,
            br#"{"page":"/app","device":"desktop","metrics":{"fid":1}}"#,
            b"lcp=1",
        ] {
            assert!(events(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
