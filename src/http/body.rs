//! The one place where request bodies and query strings enter: extractors whose errors are the
//! app's, in the API's words.
//!
//! A JSON body is accepted only when all of these hold, checked in this order:
//! 1. `Content-Type: application/json` (415 otherwise): a browser can send `text/plain` across
//!    sites without a CORS preflight, never `application/json`.
//! 2. At most [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES) (413).
//! 3. Valid UTF-8 holding exactly one JSON object, nothing after it (400).
//! 4. No object anywhere holds the same key twice (400): `{"role":"viewer","role":"admin"}`
//!    would otherwise mean whichever copy the reader keeps (serde keeps the last), while a
//!    proxy, a log or a reviewer may read the first. RFC 8259 §4 leaves duplicate names to
//!    the implementation; I-JSON (RFC 7493 §2.3) forbids them.
//! 5. No string or key anywhere holds U+0000 (400). PostgreSQL cannot store it in `text` or
//!    `jsonb` and SQLite can, so refusing it at the edge gives both backends one answer.
//! 6. No field the body type knows is `null` unless the type lists it in
//!    [`JsonBody::NULLABLE`] (400): an explicit null is never silently read as "absent".
//! 7. Every field within its limit in [`JsonBody::LIMITS`] (400): text in UTF-8 bytes, JSON
//!    values in their compact serialized bytes.
//! 8. Each field of the right type (400 naming the field and the rule, never a Rust type).

use std::future::Future;
use std::pin::Pin;

use actix_web::http::{header, StatusCode};
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::AppError;

/// A field's size limit: text in UTF-8 bytes, any other JSON value in its compact serialized
/// bytes.
pub type FieldLimit = (&'static str, usize);

/// A request body type: what may be null in it and how large each field may be. Implemented
/// next to each body struct, so the rules sit with the fields they govern.
pub trait JsonBody: DeserializeOwned {
    /// Top-level fields whose explicit `null` means something (clear the value, un-nest).
    const NULLABLE: &'static [&'static str] = &[];
    /// Size limits of the top-level fields; the README lists them.
    const LIMITS: &'static [FieldLimit];
}

/// A JSON body checked by the rules in this module's documentation.
pub struct Json<T>(pub T);

impl<T: JsonBody + 'static> FromRequest for Json<T> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if !is_json_content_type(req) {
            return Box::pin(async { Err(AppError::UnsupportedMediaType) });
        }
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|e| {
                if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::PayloadTooLarge
                } else {
                    AppError::BadRequest("could not read the request body".into())
                }
            })?;
            parse(&bytes).map(Json)
        })
    }
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
pub fn is_json_content_type(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Parses and checks a body (steps 3–8 of the module documentation).
pub fn parse<T: JsonBody>(bytes: &[u8]) -> Result<T, AppError> {
    let bad = |m: String| AppError::BadRequest(m);
    let text =
        std::str::from_utf8(bytes).map_err(|_| bad("request body is not valid UTF-8".into()))?;
    if text.trim().is_empty() {
        return Err(bad("request body must be a JSON object".into()));
    }
    // `from_str` refuses anything after the value, unlike a streaming read.
    let value: Value = serde_json::from_str(text).map_err(|e| bad(json_syntax_error(&e)))?;
    let Value::Object(fields) = &value else {
        return Err(bad("request body must be a JSON object".into()));
    };
    if let Some(path) = find_duplicate_key(text) {
        return Err(bad(format!("{path}: appears more than once")));
    }
    if let Some(path) = find_nul(&value, String::new()) {
        return Err(bad(format!(
            "{path}: must not contain the character U+0000"
        )));
    }
    for name in struct_fields::<T>() {
        if fields.get(*name).is_some_and(Value::is_null) && !T::NULLABLE.contains(name) {
            return Err(bad(format!("{name}: must not be null")));
        }
    }
    for (name, max) in T::LIMITS {
        if let Some(field) = fields.get(*name) {
            if encoded_len(field) > *max {
                return Err(bad(format!("{name}: must be at most {max} bytes")));
            }
        }
    }
    serde_path_to_error::deserialize(Strict(value)).map_err(|err| {
        let path = err.path().to_string();
        bad(field_error(&path, &err.into_inner().to_string()))
    })
}

/// A parsed body as a deserializer that only lets an object become a struct. serde's derived
/// structs also accept an array, binding its items to the fields in order (`[5,6,2]` would
/// become `{x:5, y:6, zoom:2}`); a client that sends an array meant something else.
struct Strict(Value);

fn unexpected(value: &Value) -> serde::de::Unexpected<'_> {
    use serde::de::Unexpected;
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map(Unexpected::Signed)
            .or_else(|| n.as_u64().map(Unexpected::Unsigned))
            .unwrap_or_else(|| Unexpected::Float(n.as_f64().unwrap_or_default())),
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

impl<'de> serde::de::IntoDeserializer<'de, serde_json::Error> for Strict {
    type Deserializer = Strict;

    fn into_deserializer(self) -> Strict {
        self
    }
}

impl<'de> serde::Deserializer<'de> for Strict {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        use serde::de::value::{MapDeserializer, SeqDeserializer};
        match self.0 {
            Value::Object(fields) => {
                let mut map = MapDeserializer::new(fields.into_iter().map(|(k, v)| (k, Strict(v))));
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter().map(Strict));
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match &self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            other => Err(serde::de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_map<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match &self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            other => Err(serde::de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_seq<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match &self.0 {
            Value::Array(_) => self.deserialize_any(visitor),
            other => Err(serde::de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_newtype_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    fn deserialize_ignored_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    // Scalars hold nothing nested: the value's own checks are the strict ones.
    fn deserialize_bool<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_bool(v)
    }
    fn deserialize_i8<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_i8(v)
    }
    fn deserialize_i16<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_i16(v)
    }
    fn deserialize_i32<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_i32(v)
    }
    fn deserialize_i64<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_i64(v)
    }
    fn deserialize_u8<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_u8(v)
    }
    fn deserialize_u16<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_u16(v)
    }
    fn deserialize_u32<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_u32(v)
    }
    fn deserialize_u64<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_u64(v)
    }
    fn deserialize_f32<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_f32(v)
    }
    fn deserialize_f64<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_f64(v)
    }
    fn deserialize_char<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_char(v)
    }
    fn deserialize_str<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_str(v)
    }
    fn deserialize_string<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_string(v)
    }
    fn deserialize_bytes<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_bytes(v)
    }
    fn deserialize_byte_buf<V: serde::de::Visitor<'de>>(
        self,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_byte_buf(v)
    }
    fn deserialize_unit<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_unit(v)
    }
    fn deserialize_unit_struct<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_unit_struct(name, v)
    }
    fn deserialize_tuple<V: serde::de::Visitor<'de>>(
        self,
        len: usize,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple(len, v)
    }
    fn deserialize_tuple_struct<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple_struct(name, len, v)
    }
    fn deserialize_identifier<V: serde::de::Visitor<'de>>(
        self,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_identifier(v)
    }
}

/// A query string, with the same rules as bodies for what may be in it: no U+0000, errors
/// naming the parameter and the rule.
pub struct Query<T>(pub T);

impl<T> std::ops::Deref for Query<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()).map(Query))
    }
}

/// Parses a query string (`a=1&b=x`, percent-decoded) into `T`.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, AppError> {
    let pairs = url::form_urlencoded::parse(query.as_bytes());
    if let Some((name, _)) = pairs
        .clone()
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(AppError::BadRequest(format!(
            "{name}: must not contain the character U+0000"
        )));
    }
    serde_path_to_error::deserialize(serde_urlencoded::Deserializer::new(pairs)).map_err(|err| {
        let path = err.path().to_string();
        AppError::BadRequest(field_error(&path, &err.into_inner().to_string()))
    })
}

/// The path (`agent_card.skills[2].name`) of the first string or key holding U+0000. Also
/// for JSON from elsewhere that will be stored (an agent's answer through the A2A proxy).
pub fn find_nul(value: &Value, path: String) -> Option<String> {
    let here = |p: &str| {
        if p.is_empty() {
            "request body".to_string()
        } else {
            p.to_string()
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => Some(here(&path)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_nul(v, format!("{path}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(k, v)| {
            let child = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(here(&path))
            } else {
                find_nul(v, child)
            }
        }),
        _ => None,
    }
}

/// Bytes of a field as stored: a string's UTF-8, anything else compactly serialized.
fn encoded_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    match value {
        Value::String(s) => s.len(),
        other => {
            let mut counter = Counter(0);
            // Writing to a counter cannot fail.
            let _ = serde_json::to_writer(&mut counter, other);
            counter.0
        }
    }
}

/// The field names a derived struct declares: serde hands them to `deserialize_struct`, so a
/// deserializer that only records them reads them without any input.
fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    struct FieldNames<'a>(&'a mut &'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for FieldNames<'_> {
        type Error = serde::de::value::Error;

        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("field names read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

/// A JSON syntax error in the API's words, with where it is.
/// The path (`card.skills[1].name`) of the first key that appears twice in one object of a
/// JSON text already known to be valid; `None` when every object's keys are distinct.
/// (`serde_json::Value` keeps only the last copy, so the check reads the text itself.)
pub fn find_duplicate_key(json: &str) -> Option<String> {
    use serde::de::DeserializeSeed;
    let mut found = None;
    let mut reader = serde_json::Deserializer::from_str(json);
    let _ = UniqueKeys {
        path: String::new(),
        found: &mut found,
    }
    .deserialize(&mut reader);
    found
}

/// Walks a JSON value and stops at the first object that repeats a key, writing its path.
struct UniqueKeys<'a> {
    path: String,
    found: &'a mut Option<String>,
}

impl<'de> serde::de::DeserializeSeed<'de> for UniqueKeys<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, reader: D) -> Result<(), D::Error> {
        reader.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeys<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            let item = UniqueKeys {
                path: format!("{}[{index}]", self.path),
                found: &mut *self.found,
            };
            if items.next_element_seed(item)?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut fields: A) -> Result<(), A::Error> {
        use serde::de::Error;
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = fields.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if !seen.insert(key) {
                *self.found = Some(path);
                return Err(A::Error::custom("duplicate key"));
            }
            fields.next_value_seed(UniqueKeys {
                path,
                found: &mut *self.found,
            })?;
        }
        Ok(())
    }
}

fn json_syntax_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Eof => "the JSON ends too early".to_string(),
        Category::Syntax => {
            let message = e.to_string();
            let reason = message.split(" at line ").next().unwrap_or(&message);
            match reason {
                "trailing characters" => "unexpected data after the JSON value".to_string(),
                "recursion limit exceeded" => "nested more than 128 levels deep".to_string(),
                r if r.starts_with("control character") => {
                    "a string holds a raw control character (escape it)".to_string()
                }
                r if r.contains("surrogate") || r.contains("escape") => {
                    "invalid escape in a string".to_string()
                }
                other => other.to_string(),
            }
        }
        Category::Data | Category::Io => "invalid JSON".to_string(),
    };
    format!(
        "invalid JSON body: {what} (line {}, column {})",
        e.line(),
        e.column()
    )
}

/// Turns serde's message about the value at `path` into `<field>: <rule>`. serde's messages
/// name Rust types (`i64`, `struct CreateBody`) and quote the input (which may be a secret):
/// neither reaches a client.
pub fn field_error(path: &str, message: &str) -> String {
    let field = match path {
        "" | "." | "?" => None,
        p => Some(p),
    };
    for (prefix, rule) in [
        ("missing field `", "is required"),
        ("duplicate field `", "is given more than once"),
    ] {
        if let Some(name) = message
            .strip_prefix(prefix)
            .and_then(|m| m.split('`').next())
        {
            let full = field.map_or(name.to_string(), |p| format!("{p}.{name}"));
            return format!("{full}: {rule}");
        }
    }
    let rule = if let Some(rest) = message.strip_prefix("unknown variant ") {
        rest.split_once("expected ")
            .map(|(_, one_of)| format!("must be {}", one_of.replace('`', "")))
            .unwrap_or_else(|| "is not an allowed value".into())
    } else if let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
    {
        let expected = rest.split(", expected ").nth(1).unwrap_or_default();
        format!("must be {}", plain_type(expected))
    } else if message.starts_with("invalid digit")
        || message.starts_with("cannot parse integer")
        || message.starts_with("number too large")
        || message.starts_with("number too small")
    {
        "must be an integer".into()
    } else if message.starts_with("invalid float literal") {
        "must be a number".into()
    } else if message.contains("`true` or `false`") {
        "must be true or false".into()
    } else if message.starts_with("invalid length") {
        "has the wrong number of elements".into()
    } else {
        "is invalid".into()
    };
    match field {
        Some(f) => format!("{f}: {rule}"),
        None => format!("request body: {rule}"),
    }
}

/// serde's "expected …" text as a JSON type a client understands.
fn plain_type(expected: &str) -> &'static str {
    let e = expected.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| e.contains(w));
    // Containers first: "struct" contains "str".
    if has(&["struct", "map", "object"]) {
        "an object"
    } else if has(&["sequence", "array", "tuple", "vec"]) {
        "an array"
    } else if has(&["u8", "u16", "u32", "u64", "usize"]) {
        "a non-negative integer"
    } else if has(&["i8", "i16", "i32", "i64", "i128", "isize", "integer"]) {
        "an integer"
    } else if has(&["f32", "f64", "float", "number"]) {
        "a number"
    } else if has(&["bool"]) {
        "true or false"
    } else if has(&["string", "char", "str"]) {
        "a string"
    } else {
        "of another type"
    }
}

/// For PATCH bodies: distinguishes a field that is absent (`None`) from one set to null
/// (`Some(None)`). A field using it belongs in [`JsonBody::NULLABLE`].
pub fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(de).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Sample {
        name: Option<String>,
        #[serde(default, deserialize_with = "double_option")]
        parent_id: Option<Option<String>>,
        tier: Option<i64>,
        count: Option<u32>,
        card: Option<Value>,
    }

    impl JsonBody for Sample {
        const NULLABLE: &'static [&'static str] = &["parent_id"];
        const LIMITS: &'static [FieldLimit] = &[("name", 8), ("card", 16)];
    }

    fn error(body: &str) -> String {
        match parse::<Sample>(body.as_bytes()) {
            Err(AppError::BadRequest(m)) => m,
            Err(other) => panic!("unexpected error {other:?}"),
            Ok(v) => panic!("accepted {body}: {v:?}"),
        }
    }

    #[test]
    fn field_names_are_read_from_the_derive() {
        assert_eq!(
            struct_fields::<Sample>(),
            &["name", "parent_id", "tier", "count", "card"]
        );
    }

    #[test]
    fn trailing_data_arrays_and_bad_utf8_are_refused() {
        assert!(error(r#"{"name":"a"}, "parent_id":"x"}"#).contains("after the JSON value"));
        assert_eq!(error("[5,6,2]"), "request body must be a JSON object");
        assert_eq!(
            match parse::<Sample>(b"{\"name\":\"\xff\"}") {
                Err(AppError::BadRequest(m)) => m,
                _ => unreachable!(),
            },
            "request body is not valid UTF-8"
        );
    }

    #[test]
    fn a_key_repeated_in_any_object_is_refused() {
        assert_eq!(
            error(r#"{"name":"a","name":"b"}"#),
            "name: appears more than once"
        );
        assert_eq!(
            error(r#"{"name":"a","card":{"skills":[{"x":1},{"x":1,"x":2}]}}"#),
            "card.skills[1].x: appears more than once"
        );
        assert_eq!(
            find_duplicate_key(r#"{"a":{"b":1},"c":{"b":1},"d":[{"b":1}]}"#),
            None
        );
    }

    #[test]
    fn arrays_never_become_structs_at_any_depth() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Point {
            x: f64,
            y: f64,
        }
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Outer {
            at: Option<Point>,
            path: Option<Vec<Point>>,
        }
        impl JsonBody for Outer {
            const LIMITS: &'static [FieldLimit] = &[];
        }
        let message = |body: &str| match parse::<Outer>(body.as_bytes()) {
            Err(AppError::BadRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(message(r#"{"at":[1,2]}"#), "at: must be an object");
        assert_eq!(message(r#"{"path":[[1,2]]}"#), "path[0]: must be an object");
        let ok = parse::<Outer>(br#"{"at":{"x":1,"y":2},"path":[{"x":3,"y":4}]}"#).unwrap();
        assert!(ok.at.is_some() && ok.path.is_some_and(|p| p.len() == 1));
    }

    #[test]
    fn nulls_are_refused_unless_the_field_allows_them() {
        assert_eq!(error(r#"{"name":null}"#), "name: must not be null");
        let ok = parse::<Sample>(br#"{"parent_id":null,"unknown":null}"#).unwrap();
        assert_eq!(ok.parent_id, Some(None));
    }

    #[test]
    fn nul_characters_are_refused_wherever_they_are() {
        assert_eq!(
            error(r#"{"name":"a\u0000b"}"#),
            "name: must not contain the character U+0000"
        );
        assert_eq!(
            error(r#"{"card":{"skills":[{"x":"\u0000"}]}}"#),
            "card.skills[0].x: must not contain the character U+0000"
        );
        assert_eq!(
            error(r#"{"card":{"a\u0000":1}}"#),
            "card: must not contain the character U+0000"
        );
    }

    #[test]
    fn limits_count_bytes() {
        assert!(parse::<Sample>(r#"{"name":"12345678"}"#.as_bytes()).is_ok());
        assert_eq!(
            error(r#"{"name":"123456789"}"#),
            "name: must be at most 8 bytes"
        );
        assert_eq!(
            error(r#"{"card":{"k":"0123456789"}}"#),
            "card: must be at most 16 bytes"
        );
    }

    #[test]
    fn type_errors_name_the_field_never_a_rust_type() {
        assert_eq!(error(r#"{"tier":"x"}"#), "tier: must be an integer");
        assert_eq!(
            error(r#"{"count":-1}"#),
            "count: must be a non-negative integer"
        );
        assert_eq!(error(r#"{"name":5}"#), "name: must be a string");
    }

    #[test]
    fn query_errors_name_the_parameter() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Q {
            limit: Option<i64>,
        }
        let message = |q: &str| match parse_query::<Q>(q) {
            Err(AppError::BadRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(message("limit=abc"), "limit: must be an integer");
        assert_eq!(
            message("limit=%00"),
            "limit: must not contain the character U+0000"
        );
        assert_eq!(parse_query::<Q>("limit=5").unwrap().limit, Some(5));
        assert_eq!(message("limit=1&limit=2"), "limit: is given more than once");
    }
}
