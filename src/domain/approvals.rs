//! Approval requests: an agent asks a person before it acts. The request's fields, parsed once
//! at the boundary with documented size limits, and the checked set of statuses (the same set
//! the `approval_requests.status` CHECK constraint holds).

use serde_json::Value;

use super::validation::FieldError;

/// Longest `action`, in bytes (one line: it is the banner's headline).
pub const ACTION_MAX_BYTES: usize = 1000;
/// Longest `reason`, in bytes (may span lines).
pub const REASON_MAX_BYTES: usize = 4000;
/// Longest `task_id`, in bytes.
pub const TASK_ID_MAX_BYTES: usize = 255;
/// Longest `decided_by`, in bytes.
pub const DECIDED_BY_MAX_BYTES: usize = 255;
/// Largest `context`, in bytes of compact JSON.
pub const CONTEXT_MAX_BYTES: usize = 64 * 1024;

/// `decided_by` of a request nobody decided in time.
pub const EXPIRED_DECIDER: &str = "expired";
/// `decided_by` when a decision names nobody (what the reference canvas sends anyway).
pub const DEFAULT_DECIDER: &str = "human";

/// Where an approval request stands; stored in `approval_requests.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApprovalStatus {
    /// Waiting for a person (or for expiry after `APPROVAL_TIMEOUT_SECONDS`).
    Pending,
    /// A person approved it.
    Approved,
    /// A person denied it, or it expired (`decided_by: "expired"`).
    Denied,
}

impl ApprovalStatus {
    /// The lowercase name stored and sent in the API (`"pending"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
        }
    }

    /// Reads a stored status; `None` for anything outside the set (the database refuses it).
    pub fn from_db(raw: &str) -> Option<ApprovalStatus> {
        [
            ApprovalStatus::Pending,
            ApprovalStatus::Approved,
            ApprovalStatus::Denied,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// A person's decision: `approved` or `denied`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead: the request becomes [`ApprovalStatus::Approved`].
    Approved,
    /// Do not: the request becomes [`ApprovalStatus::Denied`].
    Denied,
}

impl Decision {
    /// Reads a decision body's `decision`. Errors: a [`FieldError`] on `decision` for anything
    /// but exactly `approved` or `denied`.
    pub fn parse(raw: &str) -> Result<Decision, FieldError> {
        match raw {
            "approved" => Ok(Decision::Approved),
            "denied" => Ok(Decision::Denied),
            _ => Err(FieldError::new("decision", "must be approved or denied")),
        }
    }

    /// The status a request takes when this decision is applied.
    pub fn status(self) -> ApprovalStatus {
        match self {
            Decision::Approved => ApprovalStatus::Approved,
            Decision::Denied => ApprovalStatus::Denied,
        }
    }
}

/// A parsed `POST /workspaces/:id/approvals` body.
#[derive(Clone, Debug, PartialEq)]
pub struct NewApproval {
    /// Required, one line, at most [`ACTION_MAX_BYTES`].
    pub action: String,
    /// At most [`REASON_MAX_BYTES`].
    pub reason: Option<String>,
    /// One line, at most [`TASK_ID_MAX_BYTES`].
    pub task_id: Option<String>,
    /// A JSON object (`{}` when absent), at most [`CONTEXT_MAX_BYTES`] of compact JSON.
    pub context: Value,
}

fn bounded(field: &str, value: &str, max: usize, one_line: bool) -> Result<(), FieldError> {
    if value.len() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} bytes"),
        ));
    }
    if one_line && value.contains(['\n', '\r']) {
        return Err(FieldError::new(field, "must not contain a newline"));
    }
    if value.contains('\0') {
        return Err(FieldError::new(field, "must not contain NUL"));
    }
    Ok(())
}

fn optional_text(
    field: &str,
    raw: Option<String>,
    max: usize,
    one_line: bool,
) -> Result<Option<String>, FieldError> {
    let Some(value) = raw.map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    bounded(field, &value, max, one_line)?;
    Ok(Some(value))
}

impl NewApproval {
    /// Checks a request body. Text fields are trimmed and an empty one counts as absent.
    /// Errors: a [`FieldError`] naming the field when `action` is missing, a text field is over
    /// its byte limit, a one-line field has a newline, any text has NUL, or `context` is not a
    /// JSON object (or `null`) or is over [`CONTEXT_MAX_BYTES`].
    pub fn parse(
        action: Option<String>,
        reason: Option<String>,
        task_id: Option<String>,
        context: Option<Value>,
    ) -> Result<NewApproval, FieldError> {
        let action = optional_text("action", action, ACTION_MAX_BYTES, true)?
            .ok_or_else(|| FieldError::new("action", "is required"))?;
        let context = match context {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(Value::Object(map)) => Value::Object(map),
            Some(_) => return Err(FieldError::new("context", "must be a JSON object")),
        };
        if context.to_string().len() > CONTEXT_MAX_BYTES {
            return Err(FieldError::new(
                "context",
                format!("must be at most {CONTEXT_MAX_BYTES} bytes of JSON"),
            ));
        }
        Ok(NewApproval {
            action,
            reason: optional_text("reason", reason, REASON_MAX_BYTES, false)?,
            task_id: optional_text("task_id", task_id, TASK_ID_MAX_BYTES, true)?,
            context,
        })
    }
}

/// Who decided: one line, at most [`DECIDED_BY_MAX_BYTES`]; [`DEFAULT_DECIDER`] when absent.
pub fn parse_decided_by(raw: Option<String>) -> Result<String, FieldError> {
    Ok(
        optional_text("decided_by", raw, DECIDED_BY_MAX_BYTES, true)?
            .unwrap_or_else(|| DEFAULT_DECIDER.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn action_is_required_and_bounded() {
        assert!(NewApproval::parse(None, None, None, None).is_err());
        assert!(NewApproval::parse(Some("  ".into()), None, None, None).is_err());
        assert!(NewApproval::parse(Some("a".repeat(1001)), None, None, None).is_err());
        assert!(NewApproval::parse(Some("two\nlines".into()), None, None, None).is_err());
        let ok = NewApproval::parse(Some(" deploy ".into()), Some("why\nso".into()), None, None)
            .unwrap();
        assert_eq!(ok.action, "deploy");
        assert_eq!(ok.context, json!({}));
    }

    #[test]
    fn context_is_an_object_of_bounded_size() {
        let big = json!({ "x": "a".repeat(CONTEXT_MAX_BYTES) });
        assert!(NewApproval::parse(Some("a".into()), None, None, Some(big)).is_err());
        assert!(NewApproval::parse(Some("a".into()), None, None, Some(json!([1]))).is_err());
        assert!(NewApproval::parse(Some("a".into()), None, None, Some(json!({ "k": 1 }))).is_ok());
    }

    #[test]
    fn decisions_and_statuses_are_closed_sets() {
        assert_eq!(
            Decision::parse("approved").unwrap().status().as_str(),
            "approved"
        );
        assert!(Decision::parse("maybe").is_err());
        assert_eq!(
            ApprovalStatus::from_db("denied"),
            Some(ApprovalStatus::Denied)
        );
        assert_eq!(ApprovalStatus::from_db("escalated"), None);
        assert_eq!(parse_decided_by(None).unwrap(), "human");
        assert!(parse_decided_by(Some("x".repeat(256))).is_err());
    }
}
