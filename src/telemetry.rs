//! Logs (tracing, text or JSON) and metrics (Prometheus text via the `metrics` facade).

#![warn(missing_docs)]

use std::sync::OnceLock;
use std::time::Duration;

use actix_web::dev::ServiceResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global tracing subscriber: level filter from `RUST_LOG` (default `info`), lines
/// as `format` says (JSON flattens each event's fields to the top level). A second call (tests
/// starting several apps) leaves the first subscriber in place and does not fail.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The process-wide Prometheus recorder. Metrics are per process; several apps in one process
/// (tests) share it.
pub fn prometheus_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("duration_seconds".into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    ],
                )
                .expect("static bucket list is valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may exist only if something else installed one first; then our
            // handle renders an empty page rather than failing start-up.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Records one finished request: counts it in `canopy_http_requests_total` (labels: route
/// pattern such as `/workspaces/{id}` or `unmatched`, method, status) and observes `elapsed`, in
/// seconds, in the `canopy_http_request_duration_seconds` histogram (label: route; buckets
/// 1 ms to 5 s). Routes are labelled by pattern, never by raw path, to bound label cardinality.
pub fn record_http<B>(response: &ServiceResponse<B>, method: &str, elapsed: Duration) {
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    let status = response.status().as_u16().to_string();
    metrics::counter!("canopy_http_requests_total", "route" => route.clone(), "method" => method.to_string(), "status" => status)
        .increment(1);
    metrics::histogram!("canopy_http_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
}
