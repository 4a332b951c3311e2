//! The event catalogue (CONTRACT.md "Events").

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    WorkspaceProvisioning,
    WorkspaceOnline,
    WorkspaceOffline,
    WorkspaceDegraded,
    WorkspaceProvisionFailed,
    WorkspacePaused,
    WorkspaceRemoved,
    WorkspaceMoved,
    WorkspaceUpdated,
    AgentAssigned,
    AgentReplaced,
    AgentRemoved,
    AgentMoved,
    AgentCardUpdated,
    WorkspaceLayoutChanged,
    TaskUpdated,
    ActivityLogged,
    AgentMessage,
    ApprovalRequested,
    ApprovalEscalated,
    ApprovalDecided,
}

impl EventKind {
    pub const ALL: [EventKind; 21] = [
        EventKind::WorkspaceProvisioning,
        EventKind::WorkspaceOnline,
        EventKind::WorkspaceOffline,
        EventKind::WorkspaceDegraded,
        EventKind::WorkspaceProvisionFailed,
        EventKind::WorkspacePaused,
        EventKind::WorkspaceRemoved,
        EventKind::WorkspaceMoved,
        EventKind::WorkspaceUpdated,
        EventKind::AgentAssigned,
        EventKind::AgentReplaced,
        EventKind::AgentRemoved,
        EventKind::AgentMoved,
        EventKind::AgentCardUpdated,
        EventKind::WorkspaceLayoutChanged,
        EventKind::TaskUpdated,
        EventKind::ActivityLogged,
        EventKind::AgentMessage,
        EventKind::ApprovalRequested,
        EventKind::ApprovalEscalated,
        EventKind::ApprovalDecided,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::WorkspaceProvisioning => "WORKSPACE_PROVISIONING",
            EventKind::WorkspaceOnline => "WORKSPACE_ONLINE",
            EventKind::WorkspaceOffline => "WORKSPACE_OFFLINE",
            EventKind::WorkspaceDegraded => "WORKSPACE_DEGRADED",
            EventKind::WorkspaceProvisionFailed => "WORKSPACE_PROVISION_FAILED",
            EventKind::WorkspacePaused => "WORKSPACE_PAUSED",
            EventKind::WorkspaceRemoved => "WORKSPACE_REMOVED",
            EventKind::WorkspaceMoved => "WORKSPACE_MOVED",
            EventKind::WorkspaceUpdated => "WORKSPACE_UPDATED",
            EventKind::AgentAssigned => "AGENT_ASSIGNED",
            EventKind::AgentReplaced => "AGENT_REPLACED",
            EventKind::AgentRemoved => "AGENT_REMOVED",
            EventKind::AgentMoved => "AGENT_MOVED",
            EventKind::AgentCardUpdated => "AGENT_CARD_UPDATED",
            EventKind::WorkspaceLayoutChanged => "WORKSPACE_LAYOUT_CHANGED",
            EventKind::TaskUpdated => "TASK_UPDATED",
            EventKind::ActivityLogged => "ACTIVITY_LOGGED",
            EventKind::AgentMessage => "AGENT_MESSAGE",
            EventKind::ApprovalRequested => "APPROVAL_REQUESTED",
            EventKind::ApprovalEscalated => "APPROVAL_ESCALATED",
            EventKind::ApprovalDecided => "APPROVAL_DECIDED",
        }
    }

    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Structural events are kept forever in `structure_events`; the rest live only in the
    /// pruned `live_events`. Approval events are live-only: `approval_requests` is their
    /// durable record.
    pub fn is_structural(self) -> bool {
        !matches!(
            self,
            EventKind::WorkspaceLayoutChanged
                | EventKind::TaskUpdated
                | EventKind::ActivityLogged
                | EventKind::AgentMessage
                | EventKind::ApprovalRequested
                | EventKind::ApprovalEscalated
                | EventKind::ApprovalDecided
        )
    }

    /// Whether an event of this kind announces a change of the workspace's own row (status,
    /// description, parent, layout, current task, agent card): appending one adds 1 to the
    /// workspace's version. Agent assignment, activity, messages and approvals live in other
    /// tables; their events carry the version as it is.
    pub fn changes_workspace(self) -> bool {
        !matches!(
            self,
            EventKind::AgentAssigned
                | EventKind::AgentReplaced
                | EventKind::AgentRemoved
                | EventKind::AgentMoved
                | EventKind::ActivityLogged
                | EventKind::AgentMessage
                | EventKind::ApprovalRequested
                | EventKind::ApprovalEscalated
                | EventKind::ApprovalDecided
        )
    }
}

/// Coordinates and other floats: whole values serialize without a fraction (`100`, not
/// `100.0`), as the reference platform does.
pub fn json_number(value: f64) -> serde_json::Value {
    const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    if value.fract() == 0.0 && value.abs() < EXACT_INTEGER_LIMIT {
        serde_json::Value::from(value as i64)
    } else {
        serde_json::Number::from_f64(value)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null)
    }
}

/// serde adapter for `json_number`.
pub fn serialize_number<S: serde::Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&json_number(*value), s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("NOPE"), None);
    }

    #[test]
    fn live_only_kinds_are_not_structural() {
        assert!(!EventKind::WorkspaceLayoutChanged.is_structural());
        assert!(!EventKind::TaskUpdated.is_structural());
        assert!(EventKind::WorkspaceMoved.is_structural());
        assert!(EventKind::AgentCardUpdated.is_structural());
    }

    #[test]
    fn whole_numbers_have_no_fraction() {
        assert_eq!(json_number(100.0).to_string(), "100");
        assert_eq!(json_number(-3.0).to_string(), "-3");
        assert_eq!(json_number(1.5).to_string(), "1.5");
    }
}
