//! The event catalogue (CONTRACT.md "Events").

/// Every kind of event a command can append; the wire name (`event` in a frame) is
/// [`EventKind::as_str`]. Payload fields per kind are listed in CONTRACT.md "Events".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A workspace was created or resumed and waits for its agent to register
    /// (`name, tier, runtime, parent_id, x, y`).
    WorkspaceProvisioning,
    /// A workspace came online: on register (`url, agent_card`) or on a heartbeat from
    /// provisioning, offline or degraded.
    WorkspaceOnline,
    /// No heartbeat within the liveness TTL (`{}`).
    WorkspaceOffline,
    /// A heartbeat reported an error rate of at least 0.5 (`error_rate, sample_error`).
    WorkspaceDegraded,
    /// The agent never registered within `PROVISION_TIMEOUT_SECONDS` (`error`).
    WorkspaceProvisionFailed,
    /// A workspace was paused (`name`).
    WorkspacePaused,
    /// A workspace was deleted (`{}`, or `{cascade_deleted}` on the root of a cascade).
    WorkspaceRemoved,
    /// A workspace got a new parent (`old_parent_id, new_parent_id`).
    WorkspaceMoved,
    /// Some of `name, role, tier, runtime` changed; the payload holds the changed ones.
    WorkspaceUpdated,
    /// An agent was put on a workspace that had none (`agent_id, model`).
    AgentAssigned,
    /// A workspace's agent was swapped for another (`agent_id, model, old_model`).
    AgentReplaced,
    /// A workspace's agent was taken off (`agent_id, model`).
    AgentRemoved,
    /// An agent moved between workspaces; appended on both: on the source with
    /// `target_workspace_id`, on the target with `source_workspace_id` (plus `agent_id, model`).
    AgentMoved,
    /// The agent published a new agent card (`agent_card`).
    AgentCardUpdated,
    /// Position or collapsed state on the canvas changed (`x, y, collapsed`); live-only.
    WorkspaceLayoutChanged,
    /// A heartbeat changed the current task or the active task count (`current_task,
    /// active_tasks`); live-only.
    TaskUpdated,
    /// An activity row was recorded (`id, activity_type, method, summary, status, source_id,
    /// target_id, duration_ms`); live-only.
    ActivityLogged,
    /// An agent posted a message for the people watching (`message, workspace_id, name[,
    /// attachments]`); live-only.
    AgentMessage,
    /// An agent asked for a human decision; sent on the asking workspace. Live-only.
    ApprovalRequested,
    /// The same request, sent on the asking workspace's parent (when it has one). Live-only.
    ApprovalEscalated,
    /// A request was approved or denied, by a person or by expiry (`decided_by`). Live-only.
    ApprovalDecided,
}

impl EventKind {
    /// Every kind, in catalogue order (for round-trip tests and OpenAPI enums).
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

    /// The wire name, upper snake case as in the reference platform (`WORKSPACE_ONLINE`).
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

    /// The kind with this exact wire name; `None` for anything else (case matters).
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
