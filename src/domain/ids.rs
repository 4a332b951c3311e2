use uuid::Uuid;

/// Parses a workspace id from a path or body. Only the hyphenated form is accepted, as the
/// reference platform does.
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
