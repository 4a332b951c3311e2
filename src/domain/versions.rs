//! Workspace versions as HTTP validators: the strong `ETag` of RFC 9110 §8.8.3 and the
//! `If-Match` precondition of §13.1.1 that PATCH and DELETE evaluate against it.

/// The strong entity tag for a version: the decimal number in double quotes (`"7"`).
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// A parsed `If-Match` field (RFC 9110 §13.1.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: true whenever the resource has a current representation. A live workspace always
    /// has one (and a missing or removed one answers 404 / 410 before any precondition, as
    /// §13.2.1 asks), so `*` never fails here.
    Any,
    /// A list of entity tags: true if one of them is the current one by strong comparison
    /// (§8.8.3.2): a weak tag (`W/"7"`) never matches.
    Tags(Vec<String>),
}

impl IfMatch {
    /// Parses the field value; `None` when it is neither `*` nor a list of entity tags.
    /// Empty list elements are allowed (RFC 9110 §5.6.1).
    pub fn parse(value: &str) -> Option<IfMatch> {
        let value = value.trim_matches([' ', '\t']);
        if value == "*" {
            return Some(IfMatch::Any);
        }
        let mut tags = Vec::new();
        let mut rest = value;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                break;
            }
            let (weak, quoted) = match rest.strip_prefix("W/") {
                Some(after) => (true, after),
                None => (false, rest),
            };
            let body = quoted.strip_prefix('"')?;
            let end = body.find('"')?;
            let opaque = &body[..end];
            if !opaque
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
            {
                return None;
            }
            if !weak {
                tags.push(opaque.to_string());
            }
            rest = body[end + 1..].trim_start_matches([' ', '\t']);
            if !rest.is_empty() && !rest.starts_with(',') {
                return None;
            }
        }
        if tags.is_empty() && !value.contains('"') {
            return None;
        }
        Some(IfMatch::Tags(tags))
    }

    /// Whether the precondition holds for a live workspace at `version`.
    pub fn holds(&self, version: i64) -> bool {
        match self {
            IfMatch::Any => true,
            IfMatch::Tags(tags) => {
                let current = version.to_string();
                tags.contains(&current)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_and_lists_parse() {
        assert_eq!(IfMatch::parse("*"), Some(IfMatch::Any));
        assert_eq!(
            IfMatch::parse(r#""3", "4""#),
            Some(IfMatch::Tags(vec!["3".into(), "4".into()]))
        );
        assert_eq!(
            IfMatch::parse(r#" , "5" ,"#),
            Some(IfMatch::Tags(vec!["5".into()]))
        );
    }

    #[test]
    fn strong_comparison_only() {
        let weak = IfMatch::parse(r#"W/"3""#).unwrap();
        assert!(!weak.holds(3));
        assert!(IfMatch::parse(r#"W/"3", "3""#).unwrap().holds(3));
        assert!(!IfMatch::parse(r#""2""#).unwrap().holds(3));
        assert!(IfMatch::Any.holds(1));
    }

    #[test]
    fn garbage_is_refused() {
        for bad in ["", "3", "\"3", "\"3\" x", "**", "\"a b\""] {
            assert_eq!(IfMatch::parse(bad), None, "{bad:?}");
        }
        assert_eq!(etag(12), "\"12\"");
    }
}
