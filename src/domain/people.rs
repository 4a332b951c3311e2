//! People and the roles they act in (issue 14): API-key roles, and the actor every event and
//! activity row names.

use serde::{Deserialize, Serialize};

/// What a person may do. Ordered: each role includes the ones below it.
///
/// - `viewer`: read everything a canvas reads, open `/ws`.
/// - `editor`: also workspaces, drags, viewport, chat, approvals.
/// - `admin`: also keys, secrets, deletes, settings.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read-only: everything a canvas reads, and the WebSocket.
    Viewer,
    /// Viewer rights plus changing workspaces, layout, chat and deciding approvals.
    Editor,
    /// Everything, including API keys, secrets, deletes and settings.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

    /// The lowercase name used in the API and the database (`"editor"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    /// The role with this exact lowercase name; `None` for anything else.
    pub fn parse(raw: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    /// Whether this role may do what `required` allows.
    pub fn covers(self, required: Role) -> bool {
        self >= required
    }
}

/// Who an actor is: a person (an API key, its sessions, the admin token, the open-mode local
/// user), a workspace's agent, or Canopy itself (liveness sweep, expiry, retention).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActorType {
    /// A person: an API key or its sessions, the admin token, or the open-mode local user.
    User,
    /// A workspace's agent, acting with its workspace token.
    Agent,
    /// Canopy's own jobs (liveness, approval expiry, provisioning).
    System,
}

/// `{"type","id","name"}`: who caused an event, stored with it so replays carry it.
///
/// Ids: a key's UUID for a person with a key, `admin` for the bootstrap `ADMIN_TOKEN`, `local`
/// for anyone in open mode, the workspace id for an agent, and the job's name for the system
/// (`liveness`, `approvals`, `provisioning`, `system`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Actor {
    /// Person, agent or system (`type` in JSON).
    #[serde(rename = "type")]
    pub kind: ActorType,
    /// Stable identifier, by kind as listed above.
    pub id: String,
    /// Display name at the time of the event (a key's name, a workspace's name, the job's
    /// name); not updated if it changes later.
    pub name: String,
}

impl Actor {
    /// Canopy itself, doing `job` (e.g. `liveness`).
    pub fn system(job: &str) -> Actor {
        Actor {
            kind: ActorType::System,
            id: job.to_string(),
            name: job.to_string(),
        }
    }

    /// A person: `id` is the API key's UUID, `admin` or `local`; `name` what the canvas shows.
    pub fn user(id: impl Into<String>, name: impl Into<String>) -> Actor {
        Actor {
            kind: ActorType::User,
            id: id.into(),
            name: name.into(),
        }
    }

    /// A workspace's agent: the id is the workspace's UUID, `name` the workspace's name.
    pub fn agent(workspace_id: uuid::Uuid, name: impl Into<String>) -> Actor {
        Actor {
            kind: ActorType::Agent,
            id: workspace_id.to_string(),
            name: name.into(),
        }
    }

    /// The `{"type","id","name"}` object stored with events and activity rows.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("an actor always serializes")
    }

    /// Reads a stored actor back; `None` when the value is not that shape (rows written before
    /// actors were recorded, or damaged ones).
    pub fn from_json(value: &serde_json::Value) -> Option<Actor> {
        serde_json::from_value(value.clone()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin.covers(Role::Editor));
        assert!(Role::Editor.covers(Role::Viewer));
        assert!(!Role::Viewer.covers(Role::Editor));
        assert_eq!(Role::parse("editor"), Some(Role::Editor));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn actor_wire_shape() {
        let a = Actor::system("liveness");
        assert_eq!(
            a.to_json(),
            serde_json::json!({"type":"system","id":"liveness","name":"liveness"})
        );
    }
}
