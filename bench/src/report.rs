//! The result of a run: one JSON object, and whether the stream was intact.

use std::collections::BTreeMap;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub samples: u64,
}

impl Percentiles {
    /// From a histogram of microseconds; `None` when it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        (!h.is_empty()).then(|| {
            let ms = |micros: u64| (micros as f64 / 10.0).round() / 100.0;
            Percentiles {
                p50: ms(h.value_at_quantile(0.50)),
                p90: ms(h.value_at_quantile(0.90)),
                p99: ms(h.value_at_quantile(0.99)),
                max: ms(h.max()),
                samples: h.len(),
            }
        })
    }

    fn to_json(p: &Option<Percentiles>) -> Value {
        match p {
            Some(p) => {
                json!({ "p50": p.p50, "p90": p.p90, "p99": p.p99, "max": p.max, "samples": p.samples })
            }
            None => Value::Null,
        }
    }
}

/// Per kind of request (drag, heartbeat, activity), inside the measurement window.
#[derive(Clone, Debug, Default)]
pub struct KindReport {
    pub name: &'static str,
    pub offered: u64,
    pub committed: u64,
    pub latency: Option<Percentiles>,
}

#[derive(Clone, Debug, Default)]
pub struct ProcessReport {
    pub pid: u32,
    pub rss_kib_before_sockets: Option<u64>,
    pub rss_kib_sockets_open: Option<u64>,
    pub rss_kib_end: Option<u64>,
    /// RSS `after_close_s` after every socket closed (`None`: not read).
    pub rss_kib_after_close: Option<u64>,
    /// CPU use during the measurement window, in percent of one core.
    pub cpu_pct: Option<f64>,
}

/// The failover scenario: one instance killed, its sockets resumed elsewhere.
#[derive(Clone, Debug, Default)]
pub struct FailoverReport {
    /// Index of the killed instance among the URLs, and its process id.
    pub instance: usize,
    pub pid: u32,
    /// Seconds into the measured window when it was killed.
    pub after_s: f64,
    /// Why SIGKILL could not be sent, if it could not.
    pub kill_error: Option<String>,
    pub killed_at: Option<Instant>,
    /// Sockets that were connected to the killed instance.
    pub sockets_on_instance: usize,
    /// Sockets that resumed at least once after the kill.
    pub sockets_resumed: usize,
    /// Resumes over all sockets (a socket dropped twice resumes twice).
    pub resumes: u64,
    /// Connection attempts that failed while resuming (the dead instance refusing, timeouts).
    pub resume_failures: u64,
    /// Kill → CONNECTED on the new instance, per resumed socket, in microseconds.
    pub resume_micros: Vec<u64>,
}

impl FailoverReport {
    /// Adds one socket's outcome.
    pub fn observe(&mut self, outcome: &super::sockets::SocketOutcome) {
        self.resumes += outcome.resumes;
        self.resume_failures += outcome.resume_failures;
        if let (Some(killed), Some(resumed)) = (self.killed_at, outcome.resumed_at) {
            if resumed >= killed {
                self.sockets_resumed += 1;
                self.resume_micros
                    .push(resumed.duration_since(killed).as_micros() as u64);
            }
        }
    }

    /// Kill → CONNECTED on the survivor over the resumed sockets; `max` is the time until every
    /// one of them had resumed.
    pub fn resume_latency(&self) -> Option<Percentiles> {
        let mut h = super::shared::latency_histogram();
        for &m in &self.resume_micros {
            h.saturating_record(m.clamp(1, super::shared::MAX_LATENCY_MICROS));
        }
        Percentiles::of(&h)
    }

    /// Every socket of the killed instance resumed (the stream checks are the report's own).
    pub fn all_resumed(&self) -> bool {
        self.kill_error.is_none() && self.sockets_resumed >= self.sockets_on_instance
    }

    fn to_json(&self) -> Value {
        json!({
            "instance": self.instance,
            "pid": self.pid,
            "after_s": self.after_s,
            "kill_error": self.kill_error,
            "sockets_on_instance": self.sockets_on_instance,
            "sockets_resumed": self.sockets_resumed,
            "all_resumed": self.all_resumed(),
            "resumes": self.resumes,
            "resume_failures": self.resume_failures,
            "resume_ms": Percentiles::to_json(&self.resume_latency()),
        })
    }
}

/// The drag-preview lane (issue 15 item 4): draggers' frames → a DRAG_PREVIEWS entry on every other
/// canvas, over the measurement window. Volatile: loss is reported, never a failure.
#[derive(Clone, Debug, Default)]
pub struct PreviewReport {
    pub draggers: usize,
    /// Drag frames per second per dragger.
    pub drag_hz: f64,
    /// Canvases that timed the previews (every socket but the draggers).
    pub watchers: usize,
    /// Drag frames sent inside the window.
    pub sent: u64,
    /// Of those, the ones at least one canvas received; the server publishes the latest
    /// position per node per 33 ms tick, so the rest were superseded by design.
    pub published: u64,
    /// Previews received over all watchers (DRAG_PREVIEWS entries, or an older server's
    /// DRAG_PREVIEW frames).
    pub delivered: u64,
    /// Drag frames the server answered with an error frame (the principal may not edit).
    pub refused: u64,
    /// Preview frames the servers dropped for canvases whose volatile queue was full, over
    /// the window (`canopy_ws_volatile_dropped_total`, summed over the instances); `None` when
    /// an instance's `/metrics` did not answer. The rest of [`PreviewReport::lost`] is
    /// positions superseded within a tick on the receiving instance (by design).
    pub dropped_by_server: Option<u64>,
    /// Drag frame sent → its preview received, per delivery.
    pub latency: Option<Percentiles>,
}

impl PreviewReport {
    /// Published previews a watcher did not get: `published × watchers − delivered`. Dropped
    /// for a socket that fell behind ([`PreviewReport::dropped_by_server`] frames), or superseded
    /// by a later position of the same node within a tick of the receiving instance.
    pub fn lost(&self) -> u64 {
        (self.published * self.watchers as u64).saturating_sub(self.delivered)
    }

    /// Frames sent that no canvas received: superseded within a server tick, or lost before
    /// any canvas.
    pub fn superseded(&self) -> u64 {
        self.sent.saturating_sub(self.published)
    }

    fn to_json(&self) -> Value {
        json!({
            "draggers": self.draggers,
            "drag_hz": self.drag_hz,
            "watchers": self.watchers,
            "sent": self.sent,
            "published": self.published,
            "superseded": self.superseded(),
            "delivered": self.delivered,
            "lost": self.lost(),
            "dropped_by_server": self.dropped_by_server,
            "refused": self.refused,
            "latency_ms": Percentiles::to_json(&self.latency),
        })
    }
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub instances: usize,
    pub clients: usize,
    pub connected: usize,
    pub connect_failures: Vec<String>,
    pub workspaces: usize,
    pub agents: usize,
    pub mix: String,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub rate_target: f64,
    pub kinds: Vec<KindReport>,
    pub deliveries: u64,
    /// PATCH/heartbeat/activity sent → frame on a socket, for drags and activity posts.
    pub latency: Option<Percentiles>,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub resyncs: u64,
    /// Sockets that ended before the run did, by reason ("close 4008", "eof", …).
    pub closed: BTreeMap<String, u64>,
    /// Open sockets that never reached `final_seq` within the tail wait.
    pub sockets_behind: u64,
    pub final_seq: i64,
    pub tail_wait_ms: u64,
    /// Seconds between the sockets closing and the `rss_kib_after_close` reading (0: none).
    pub after_close_s: f64,
    pub errors: BTreeMap<String, u64>,
    /// Requests cut by the failover scenario's kill (in flight to the killed instance); they
    /// are in `errors` too, but do not make the run fail.
    pub cut_by_kill: u64,
    /// Set by the failover scenario.
    pub failover: Option<FailoverReport>,
    /// Set when the run had draggers.
    pub previews: Option<PreviewReport>,
    /// One example of each kind of error.
    pub error_samples: BTreeMap<String, String>,
    pub processes: Vec<ProcessReport>,
    pub bench_cpu_pct: Option<f64>,
    /// Busy share of all cores during the measurement window (servers, generator, database,
    /// Redis and anything else on the machine), in percent of the whole machine.
    pub machine_cpu_pct: Option<f64>,
    pub cores: usize,
}

impl Report {
    pub fn offered(&self) -> u64 {
        self.kinds.iter().map(|k| k.offered).sum()
    }

    pub fn committed(&self) -> u64 {
        self.kinds.iter().map(|k| k.committed).sum()
    }

    /// Failed requests, not counting those the failover kill cut.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum::<u64>() - self.cut_by_kill
    }

    pub fn kind(&self, name: &str) -> Option<&KindReport> {
        self.kinds.iter().find(|k| k.name == name)
    }

    /// Every socket got every event exactly once, in order, and stayed open (or, in the
    /// failover scenario, resumed on another instance).
    pub fn stream_intact(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.out_of_order == 0
            && self.resyncs == 0
            && self.closed.is_empty()
            && self.sockets_behind == 0
            && self.connect_failures.is_empty()
            && self
                .failover
                .as_ref()
                .is_none_or(FailoverReport::all_resumed)
    }

    /// 0: intact and no request failed; 1: the stream was not intact; 3: intact, but some
    /// requests failed (non-2xx, timeouts). (2 is a usage or setup error, see the binary.)
    pub fn exit_code(&self) -> i32 {
        if !self.stream_intact() {
            1
        } else if self.error_count() > 0 {
            3
        } else {
            0
        }
    }

    /// KiB of server RSS per open socket: (RSS with the sockets open − RSS before), summed
    /// over the given processes, divided by the sockets open.
    pub fn rss_kib_per_socket(&self) -> Option<f64> {
        if self.connected == 0 || self.processes.is_empty() {
            return None;
        }
        let mut delta = 0i64;
        for p in &self.processes {
            delta += p.rss_kib_sockets_open? as i64 - p.rss_kib_before_sockets? as i64;
        }
        Some((delta as f64 / self.connected as f64 * 100.0).round() / 100.0)
    }

    /// RSS after the sockets closed over RSS before they opened, summed over the processes
    /// (1.0: everything given back; issue 16's target is at most 1.25).
    pub fn rss_after_close_ratio(&self) -> Option<f64> {
        if self.processes.is_empty() {
            return None;
        }
        let (mut before, mut after) = (0u64, 0u64);
        for p in &self.processes {
            before += p.rss_kib_before_sockets?;
            after += p.rss_kib_after_close?;
        }
        (before > 0).then(|| (after as f64 / before as f64 * 1000.0).round() / 1000.0)
    }

    pub fn to_json(&self) -> Value {
        let per_s = |n: u64| {
            if self.duration_s > 0.0 {
                (n as f64 / self.duration_s * 10.0).round() / 10.0
            } else {
                0.0
            }
        };
        let by_kind = |f: &dyn Fn(&KindReport) -> Value| {
            Value::Object(
                self.kinds
                    .iter()
                    .map(|k| (k.name.to_string(), f(k)))
                    .collect::<Map<_, _>>(),
            )
        };
        let request_latency =
            |name: &str| Percentiles::to_json(&self.kind(name).and_then(|k| k.latency.clone()));
        let processes: Vec<Value> = self
            .processes
            .iter()
            .map(|p| {
                json!({
                    "pid": p.pid,
                    "rss_kib_before_sockets": p.rss_kib_before_sockets,
                    "rss_kib_sockets_open": p.rss_kib_sockets_open,
                    "rss_kib_end": p.rss_kib_end,
                    "rss_kib_after_close": p.rss_kib_after_close,
                    "cpu_pct": p.cpu_pct,
                })
            })
            .collect();
        let mut out = json!({
            "ok": self.stream_intact(),
            "instances": self.instances,
            "clients": self.clients,
            "connected": self.connected,
            "workspaces": self.workspaces,
            "agents": self.agents,
            "mix": self.mix,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "rate_target": self.rate_target,
            "offered_per_s": per_s(self.offered()),
            "committed_per_s": per_s(self.committed()),
            "deliveries_per_s": per_s(self.deliveries),
            "latency_ms": Percentiles::to_json(&self.latency),
            "lost": self.lost,
            "duplicated": self.duplicated,
            "out_of_order": self.out_of_order,
            "resyncs": self.resyncs,
            "closed": self.closed,
            "sockets_behind": self.sockets_behind,
            "final_seq": self.final_seq,
            "tail_wait_ms": self.tail_wait_ms,
            "patch_latency_ms": request_latency("drag"),
            "heartbeat_latency_ms": request_latency("heartbeat"),
            "activity_latency_ms": request_latency("activity"),
            "offered": by_kind(&|k| json!(k.offered)),
            "committed": by_kind(&|k| json!(k.committed)),
            "rss_kib": processes,
            "rss_kib_per_socket": self.rss_kib_per_socket(),
            "bench_cpu_pct": self.bench_cpu_pct,
            "machine_cpu_pct": self.machine_cpu_pct,
            "cores": self.cores,
            "errors": self.error_count(),
            "cut_by_kill": self.cut_by_kill,
            "failover": self.failover.as_ref().map(FailoverReport::to_json),
            "previews": self.previews.as_ref().map(PreviewReport::to_json),
            "error_kinds": self.errors,
            "error_samples": self.error_samples,
            "connect_failures": self.connect_failures.len(),
            "connect_failure_sample": self.connect_failures.first(),
        });
        // Added apart: one more field in the literal above passes `json!`'s recursion limit.
        if let Value::Object(fields) = &mut out {
            fields.insert("after_close_s".into(), json!(self.after_close_s));
            fields.insert(
                "rss_after_close_ratio".into(),
                json!(self.rss_after_close_ratio()),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let clean = Report::default();
        assert!(clean.stream_intact());
        assert_eq!(clean.exit_code(), 0);
        let errors = Report {
            errors: BTreeMap::from([("drag 500".to_string(), 2)]),
            ..Report::default()
        };
        assert_eq!(errors.exit_code(), 3);
        // Requests in flight to the killed instance are the scenario, not a failure.
        let cut = Report {
            errors: BTreeMap::from([(format!("{}connect", crate::CUT_BY_KILL), 3)]),
            cut_by_kill: 3,
            ..Report::default()
        };
        assert_eq!((cut.error_count(), cut.exit_code()), (0, 0));
        for broken in [
            Report {
                lost: 1,
                ..Report::default()
            },
            Report {
                duplicated: 1,
                ..Report::default()
            },
            Report {
                out_of_order: 1,
                ..Report::default()
            },
            Report {
                closed: BTreeMap::from([("close 4008".to_string(), 1)]),
                ..Report::default()
            },
            Report {
                sockets_behind: 1,
                ..Report::default()
            },
            // A socket of the killed instance never resumed.
            Report {
                failover: Some(FailoverReport {
                    sockets_on_instance: 2,
                    sockets_resumed: 1,
                    ..FailoverReport::default()
                }),
                ..Report::default()
            },
        ] {
            assert_eq!(broken.exit_code(), 1);
            assert_eq!(broken.to_json()["ok"], false);
        }
    }

    #[test]
    fn preview_loss_is_counted_and_never_fails_the_run() {
        let previews = PreviewReport {
            watchers: 10,
            sent: 100,
            published: 90,
            delivered: 880,
            ..PreviewReport::default()
        };
        assert_eq!((previews.superseded(), previews.lost()), (10, 20));
        let report = Report {
            previews: Some(previews),
            ..Report::default()
        };
        assert_eq!(report.exit_code(), 0);
        assert_eq!(report.to_json()["previews"]["lost"], 20);
        assert_eq!(Report::default().to_json()["previews"], Value::Null);
    }

    #[test]
    fn percentiles_in_milliseconds() {
        let mut h = super::super::shared::latency_histogram();
        for micros in 1..=1000u64 {
            h.record(micros * 10).unwrap();
        }
        let p = Percentiles::of(&h).unwrap();
        assert!((p.p50 - 5.0).abs() < 0.02, "{p:?}");
        assert!((p.p99 - 9.9).abs() < 0.02, "{p:?}");
        assert!((p.max - 10.0).abs() < 0.02, "{p:?}");
        assert_eq!(p.samples, 1000);
        assert!(Percentiles::of(&super::super::shared::latency_histogram()).is_none());
    }
}
