//! Workspace ids as the API accepts them: the hyphenated UUID form only (36 characters).

use uuid::Uuid;

/// Parses a workspace id from a path or body; `None` for anything but the 36-character
/// hyphenated form (no braces, URN prefix or simple form): the only form the reference
/// platform accepts.
pub fn parse_uuid(raw: &str) -> Option<Uuid> {
    if raw.len() != 36 {
        return None;
    }
    Uuid::parse_str(raw).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_hyphenated_uuids() {
        assert!(super::parse_uuid("6f1c2d3e-0000-4000-8000-000000000001").is_some());
        assert!(super::parse_uuid("6f1c2d3e000040008000000000000001").is_none());
        assert!(super::parse_uuid("nope").is_none());
    }
}
