//! Parse, don't validate: each type here can only hold a value the contract allows. Errors
//! name the field, so a client can tell what to fix.

use std::fmt;

/// A request field that failed parsing: becomes a 400 `{"error": "<field>: <reason>"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The request field at fault, as the client spelled it (`name`, `tier`, `x`).
    pub field: String,
    /// What rule it broke, phrased to follow the field name ("must be at most 255 bytes").
    pub reason: String,
}

impl FieldError {
    /// An error on `field` for `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}

/// Size limits of request fields, in bytes: text in UTF-8, JSON values compactly serialized.
/// Applied where bodies enter (`http::body`), listed in the README's limits table. Events carry
/// only bounded fields (names, summaries, messages); full activity bodies stay in
/// `activity_logs`, fetched on demand.
pub mod limits {
    /// A UUID given as text (`parent_id`, `workspace_id`, …): 36 characters, with room for
    /// braces or a URN prefix the parser may accept.
    pub const ID: usize = 64;
    /// An agent's URL.
    pub const URL: usize = 2048;
    /// An agent card (JSON).
    pub const AGENT_CARD: usize = 64 * 1024;
    /// An activity's type, method and status words.
    pub const WORD: usize = 128;
    /// An activity summary (carried by its ACTIVITY_LOGGED event).
    pub const SUMMARY: usize = 16 * 1024;
    /// An activity's error detail.
    pub const ERROR_DETAIL: usize = 16 * 1024;
    /// An activity's request or response body (JSON; never carried by events).
    pub const ACTIVITY_BODY: usize = 256 * 1024;
    /// An activity's metadata (JSON).
    pub const METADATA: usize = 16 * 1024;
    /// A message to the people on the canvas (`notify`).
    pub const MESSAGE: usize = 16 * 1024;
    /// A notify message's attachments (JSON array, at most [`ATTACHMENT_COUNT`] entries).
    pub const ATTACHMENTS: usize = 16 * 1024;
    /// Attachments per notify message.
    pub const ATTACHMENT_COUNT: usize = 32;
    /// Heartbeat texts (`current_task`, `sample_error`).
    pub const HEARTBEAT_TEXT: usize = 4096;
    /// A canvas position object `{x, y}`.
    pub const POSITION: usize = 256;
}

/// Characters the reference platform refuses in names and roles (they break its YAML and
/// markdown renderers downstream).
const BANNED_CHARS: &[char] = &['{', '}', '[', ']', '|', '>', '*', '&', '!'];

/// Every character that ends a line (Unicode's mandatory breaks, UAX #14: LF, CR, VT, FF, NEL,
/// LINE SEPARATOR, PARAGRAPH SEPARATOR): a one-line field holds none, or a name could render
/// as two lines in a card, a log line or a terminal.
const LINE_BREAKS: [char; 7] = [
    '\n', '\r', '\u{0B}', '\u{0C}', '\u{85}', '\u{2028}', '\u{2029}',
];

fn check_text(
    field: &str,
    value: &str,
    max_bytes: usize,
    ban_special: bool,
) -> Result<(), FieldError> {
    if value.len() > max_bytes {
        return Err(FieldError::new(
            field,
            format!("must be at most {max_bytes} bytes"),
        ));
    }
    if value.contains(LINE_BREAKS) {
        return Err(FieldError::new(field, "must not contain a newline"));
    }
    if ban_special {
        if let Some(c) = value.chars().find(|c| BANNED_CHARS.contains(c)) {
            return Err(FieldError::new(field, format!("must not contain '{c}'")));
        }
    }
    Ok(())
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr, $ban:expr, $allow_empty:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// Longest accepted value, in bytes of UTF-8 after trimming.
            pub const MAX_BYTES: usize = $max;

            #[doc = concat!(
                "Trims `raw` and checks it. Errors: a [`FieldError`] on `", $field,
                "` when it is empty (where required) or over [`Self::MAX_BYTES`], has a ",
                "newline, or (names and roles) has one of `{ } [ ] | > * & !`."
            )]
            pub fn parse(raw: &str) -> Result<Self, FieldError> {
                let value = raw.trim();
                if !$allow_empty && value.is_empty() {
                    return Err(FieldError::new($field, "is required"));
                }
                check_text($field, value, $max, $ban)?;
                Ok($name(value.to_string()))
            }

            /// The checked, trimmed text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The checked, trimmed text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }
    };
}

text_type!(
    /// A workspace's display name: required, at most 255 bytes, one line, no markup characters.
    WorkspaceName, "name", 255, true, false
);
text_type!(
    /// The org-chart role ("Marketing", "QA"): may be empty, at most 1000 bytes, one line,
    /// no markup characters.
    WorkspaceRole, "role", 1000, true, true
);
text_type!(
    /// An API key's name (whose key it is: "Ada's laptop", "CI"): required, one line.
    KeyName, "name", 255, false, false
);
text_type!(
    /// An AI model name ("gpt-4o"): required, at most 100 bytes, one line.
    ModelName, "model", 100, false, false
);
text_type!(
    /// The agent runtime ("langgraph", "claude-code", …): may be empty, at most 100 bytes,
    /// one line.
    RuntimeName, "runtime", 100, false, true
);

/// Deployment tier, 1 to 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tier(i32);

impl Tier {
    /// The tier of a workspace created without one.
    pub const DEFAULT: Tier = Tier(3);

    /// Errors: a [`FieldError`] on `tier` unless `raw` is 1, 2, 3 or 4.
    pub fn parse(raw: i64) -> Result<Self, FieldError> {
        if (1..=4).contains(&raw) {
            Ok(Tier(raw as i32))
        } else {
            Err(FieldError::new("tier", "must be an integer from 1 to 4"))
        }
    }

    /// The tier as stored, 1 to 4.
    pub fn get(self) -> i32 {
        self.0
    }
}

/// A canvas coordinate: any finite number.
pub fn parse_coordinate(field: &str, value: f64) -> Result<f64, FieldError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(FieldError::new(field, "must be a finite number"))
    }
}

/// Largest absolute value of a workspace's canvas coordinate, px: ten thousand screens of
/// room either way, while every sum placement and Arrange make stays exact in f64.
pub const MAX_POSITION: f64 = 1e7;

/// A workspace's canvas coordinate (`canvas.x`/`y` on create, `x`/`y` on PATCH): a finite
/// number within ±[`MAX_POSITION`]; 400 naming `field` otherwise.
pub fn parse_position(field: &str, value: f64) -> Result<f64, FieldError> {
    let value = parse_coordinate(field, value)?;
    if value.abs() <= MAX_POSITION {
        Ok(value)
    } else {
        Err(FieldError::new(
            field,
            "must be between -10000000 and 10000000",
        ))
    }
}

/// Largest viewport zoom.
pub const MAX_ZOOM: f64 = 10.0;

/// Largest absolute value of the viewport's pan offset, screen px: the farthest card
/// ([`MAX_POSITION`]) at the largest zoom.
pub const MAX_VIEWPORT_OFFSET: f64 = MAX_POSITION * MAX_ZOOM;

/// The viewport's pan offset (`x`/`y` of `PUT /canvas/viewport`): a finite number within
/// ±[`MAX_VIEWPORT_OFFSET`]; 400 naming `field` otherwise.
pub fn parse_viewport_offset(field: &str, value: f64) -> Result<f64, FieldError> {
    let value = parse_coordinate(field, value)?;
    if value.abs() <= MAX_VIEWPORT_OFFSET {
        Ok(value)
    } else {
        Err(FieldError::new(
            field,
            "must be between -100000000 and 100000000",
        ))
    }
}

/// Viewport zoom, in (0, [`MAX_ZOOM`]].
pub fn parse_zoom(value: f64) -> Result<f64, FieldError> {
    if value.is_finite() && value > 0.0 && value <= MAX_ZOOM {
        Ok(value)
    } else {
        Err(FieldError::new(
            "zoom",
            "must be greater than 0 and at most 10",
        ))
    }
}

/// An activity's kind; in the API its snake_case name (`a2a_send`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ActivityType {
    /// An outgoing A2A call made by the workspace's agent (`a2a_send`).
    A2aSend,
    /// An A2A call the workspace's agent received (`a2a_receive`).
    A2aReceive,
    /// Progress on a task (`task_update`).
    TaskUpdate,
    /// A free-form log line from the agent (`agent_log`).
    AgentLog,
    /// The agent promoted a learned skill (`skill_promotion`).
    SkillPromotion,
    /// The agent wrote to its memory (`memory_write`).
    MemoryWrite,
    /// Something failed (`error`); `error_detail` says what.
    Error,
}

impl ActivityType {
    /// Every type, in the order error messages list them.
    pub const ALL: [ActivityType; 7] = [
        ActivityType::A2aSend,
        ActivityType::A2aReceive,
        ActivityType::TaskUpdate,
        ActivityType::AgentLog,
        ActivityType::SkillPromotion,
        ActivityType::MemoryWrite,
        ActivityType::Error,
    ];

    /// The snake_case API name (`"a2a_send"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityType::A2aSend => "a2a_send",
            ActivityType::A2aReceive => "a2a_receive",
            ActivityType::TaskUpdate => "task_update",
            ActivityType::AgentLog => "agent_log",
            ActivityType::SkillPromotion => "skill_promotion",
            ActivityType::MemoryWrite => "memory_write",
            ActivityType::Error => "error",
        }
    }

    /// The type with this exact API name. Errors: a [`FieldError`] on `field` listing the
    /// allowed names.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        ActivityType::ALL
            .into_iter()
            .find(|t| t.as_str() == raw)
            .ok_or_else(|| {
                let allowed: Vec<&str> = ActivityType::ALL.iter().map(|t| t.as_str()).collect();
                FieldError::new(field, format!("must be one of: {}", allowed.join(", ")))
            })
    }
}

/// An activity type used as a *filter* (`GET /workspaces/:id/activity?type=`): any sane name,
/// known or not, because the reference platform answers 200 `[]` for a type it has no rows of
/// (its canvas polls `type=delegation`). Sane means 1 to 64 bytes of ASCII letters, digits,
/// `_`, `-` and `.`; anything else is a 400 naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityTypeFilter(String);

impl ActivityTypeFilter {
    /// Longest accepted filter value, in bytes.
    pub const MAX_BYTES: usize = 64;

    /// Errors: a [`FieldError`] on `field` when `raw` is empty, over [`Self::MAX_BYTES`], or
    /// has a character outside the set above.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        if raw.is_empty() || raw.len() > Self::MAX_BYTES {
            return Err(FieldError::new(
                field,
                format!("must be 1 to {} bytes", Self::MAX_BYTES),
            ));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(FieldError::new(
                field,
                "may contain only ASCII letters, digits, '_', '-' and '.'",
            ));
        }
        Ok(ActivityTypeFilter(raw.to_string()))
    }

    /// The filter value as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Truncates to at most `max_bytes` without splitting a UTF-8 character.
pub fn truncate_utf8(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_and_plain() {
        assert!(WorkspaceName::parse("Marketing team").is_ok());
        assert_eq!(
            WorkspaceName::parse("  ").unwrap_err().reason,
            "is required"
        );
        assert!(WorkspaceName::parse(&"a".repeat(256)).is_err());
        assert!(WorkspaceName::parse(&"a".repeat(255)).is_ok());
        for line_break in LINE_BREAKS {
            let name = format!("two{line_break}lines");
            assert_eq!(
                WorkspaceName::parse(&name).unwrap_err().reason,
                "must not contain a newline",
                "{name:?}"
            );
        }
        for bad in ["{x}", "a[1]", "a|b", "a>b", "a*", "a&b", "hey!"] {
            assert!(WorkspaceName::parse(bad).is_err(), "{bad}");
        }
        assert!(WorkspaceRole::parse("").is_ok());
        assert!(ModelName::parse("claude-sonnet-4|x").is_ok());
    }

    #[test]
    fn zoom_and_tier_ranges() {
        assert!(parse_zoom(0.0).is_err());
        assert!(parse_zoom(10.0).is_ok());
        assert!(parse_zoom(10.01).is_err());
        assert!(parse_zoom(f64::NAN).is_err());
        assert!(Tier::parse(0).is_err());
        assert_eq!(Tier::parse(4).unwrap().get(), 4);
    }

    #[test]
    fn activity_type_error_names_allowed_values() {
        let err = ActivityType::parse("activity_type", "nope").unwrap_err();
        assert!(err.reason.contains("a2a_send") && err.reason.contains("memory_write"));
    }

    #[test]
    fn activity_type_filters_accept_unknown_but_sane_names() {
        assert!(ActivityTypeFilter::parse("type", "delegation").is_ok());
        assert!(ActivityTypeFilter::parse("type", "a2a_receive").is_ok());
        assert!(ActivityTypeFilter::parse("type", "").is_err());
        assert!(ActivityTypeFilter::parse("type", &"a".repeat(65)).is_err());
        assert!(ActivityTypeFilter::parse("type", "a b").is_err());
        assert!(ActivityTypeFilter::parse("type", "x'--").is_err());
        assert!(ActivityTypeFilter::parse("type", "é").is_err());
    }

    #[test]
    fn truncation_respects_utf8() {
        assert_eq!(truncate_utf8("héllo", 2), "h");
        assert_eq!(truncate_utf8("héllo", 3), "hé");
        assert_eq!(truncate_utf8("abc", 10), "abc");
    }
}
