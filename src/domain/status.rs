//! The workspace status machine (CONTRACT.md "Status machine").

use std::fmt;

/// A workspace's lifecycle state; transitions and their events are in CONTRACT.md "Status
/// machine".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkspaceStatus {
    /// Created or resumed; waiting for the agent to register.
    Provisioning,
    /// Registered and heartbeating within the liveness TTL.
    Online,
    /// Heartbeating, but with an error rate of at least [`DEGRADED_ERROR_RATE`].
    Degraded,
    /// No heartbeat within the liveness TTL; the next heartbeat brings it back online.
    Offline,
    /// Never registered within the provision timeout.
    Failed,
    /// Paused by a person; heartbeats do not change it until it is resumed.
    Paused,
    /// Deleted; terminal: no register or heartbeat brings it back.
    Removed,
}

impl WorkspaceStatus {
    /// The lowercase name used in the API, the database and events (`"online"`).
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceStatus::Provisioning => "provisioning",
            WorkspaceStatus::Online => "online",
            WorkspaceStatus::Degraded => "degraded",
            WorkspaceStatus::Offline => "offline",
            WorkspaceStatus::Failed => "failed",
            WorkspaceStatus::Paused => "paused",
            WorkspaceStatus::Removed => "removed",
        }
    }

    /// The status with this exact lowercase name; `None` for any other string.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "provisioning" => WorkspaceStatus::Provisioning,
            "online" => WorkspaceStatus::Online,
            "degraded" => WorkspaceStatus::Degraded,
            "offline" => WorkspaceStatus::Offline,
            "failed" => WorkspaceStatus::Failed,
            "paused" => WorkspaceStatus::Paused,
            "removed" => WorkspaceStatus::Removed,
            _ => return None,
        })
    }
}

impl fmt::Display for WorkspaceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// At or above this error rate a heartbeat marks an online workspace degraded.
pub const DEGRADED_ERROR_RATE: f64 = 0.5;
/// Below this error rate a heartbeat brings a degraded workspace back online.
pub const RECOVERED_ERROR_RATE: f64 = 0.1;

/// What a heartbeat does to a status: `Some(next)` when it causes a transition.
pub fn on_heartbeat(current: WorkspaceStatus, error_rate: f64) -> Option<WorkspaceStatus> {
    use WorkspaceStatus::*;
    match current {
        // The contract brings a silent or new workspace online first; a high error rate
        // degrades it on the next heartbeat.
        Provisioning | Offline => Some(Online),
        Online if error_rate >= DEGRADED_ERROR_RATE => Some(Degraded),
        Degraded if error_rate < RECOVERED_ERROR_RATE => Some(Online),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::WorkspaceStatus::*;
    use super::*;

    #[test]
    fn heartbeat_transitions() {
        assert_eq!(on_heartbeat(Provisioning, 0.0), Some(Online));
        assert_eq!(on_heartbeat(Offline, 0.0), Some(Online));
        assert_eq!(on_heartbeat(Online, 0.5), Some(Degraded));
        assert_eq!(on_heartbeat(Online, 0.49), None);
        assert_eq!(on_heartbeat(Degraded, 0.2), None);
        assert_eq!(on_heartbeat(Degraded, 0.09), Some(Online));
        assert_eq!(on_heartbeat(Paused, 0.0), None);
        assert_eq!(on_heartbeat(Removed, 0.0), None);
        assert_eq!(on_heartbeat(Failed, 0.0), None);
    }
}
