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
    Viewer,
    Editor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

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
    User,
    Agent,
    System,
}

/// `{"type","id","name"}`: who caused an event, stored with it so replays carry it.
///
/// Ids: a key's UUID for a person with a key, `admin` for the bootstrap `ADMIN_TOKEN`, `local`
/// for anyone in open mode, the workspace id for an agent, and the job's name for the system
/// (`liveness`, `approvals`, `provisioning`, `system`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Actor {
    #[serde(rename = "type")]
    pub kind: ActorType,
    pub id: String,
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

    pub fn user(id: impl Into<String>, name: impl Into<String>) -> Actor {
        Actor {
            kind: ActorType::User,
            id: id.into(),
            name: name.into(),
        }
    }

    pub fn agent(workspace_id: uuid::Uuid, name: impl Into<String>) -> Actor {
        Actor {
            kind: ActorType::Agent,
            id: workspace_id.to_string(),
            name: name.into(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("an actor always serializes")
    }

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
