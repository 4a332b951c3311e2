//! Column types that are native on PostgreSQL (uuid, jsonb, timestamptz) and TEXT on SQLite.
//!
//! `#[derive(MultiConnection)]` only knows the SQL types both backends share, so each type here
//! has three parts: a marker SQL type with a PostgreSQL OID and a SQLite name, a newtype with
//! `ToSql`/`FromSql` for each real backend, and a bridge to the generated `MultiBackend`.

use chrono::{DateTime, SecondsFormat, Utc};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{self, HasSqlType, SqlType};
use diesel::sqlite::Sqlite;
use uuid::Uuid;

use super::connection::MultiBackend;

#[derive(SqlType, diesel::query_builder::QueryId, Clone, Copy, Debug)]
#[diesel(postgres_type(oid = 2950, array_oid = 2951))]
#[diesel(sqlite_type(name = "Text"))]
pub struct SqlUuid;

#[derive(SqlType, diesel::query_builder::QueryId, Clone, Copy, Debug)]
#[diesel(postgres_type(oid = 3802, array_oid = 3807))]
#[diesel(sqlite_type(name = "Text"))]
pub struct SqlJson;

#[derive(SqlType, diesel::query_builder::QueryId, Clone, Copy, Debug)]
#[diesel(postgres_type(oid = 1184, array_oid = 1185))]
#[diesel(sqlite_type(name = "Text"))]
pub struct SqlTimestamp;

/// A UUID column value.
#[derive(AsExpression, FromSqlRow, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[diesel(sql_type = SqlUuid)]
pub struct DbUuid(pub Uuid);

/// A JSON document column value.
#[derive(AsExpression, FromSqlRow, Clone, Debug, PartialEq)]
#[diesel(sql_type = SqlJson)]
pub struct DbJson(pub serde_json::Value);

/// A UTC timestamp column value.
#[derive(AsExpression, FromSqlRow, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[diesel(sql_type = SqlTimestamp)]
pub struct DbTime(pub DateTime<Utc>);

impl From<Uuid> for DbUuid {
    fn from(id: Uuid) -> Self {
        DbUuid(id)
    }
}
impl From<DateTime<Utc>> for DbTime {
    fn from(t: DateTime<Utc>) -> Self {
        DbTime(t)
    }
}
impl From<serde_json::Value> for DbJson {
    fn from(v: serde_json::Value) -> Self {
        DbJson(v)
    }
}

/// SQLite stores timestamps as text; a fixed width with microseconds keeps text order equal to
/// time order, which retention and paging queries rely on.
pub fn sqlite_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn sqlite_text(value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<String> {
    <String as FromSql<sql_types::Text, Sqlite>>::from_sql(value)
}

// --- PostgreSQL: delegate to Diesel's native implementations. ---

impl ToSql<SqlUuid, Pg> for DbUuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <Uuid as ToSql<sql_types::Uuid, Pg>>::to_sql(&self.0, out)
    }
}
impl FromSql<SqlUuid, Pg> for DbUuid {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <Uuid as FromSql<sql_types::Uuid, Pg>>::from_sql(bytes).map(DbUuid)
    }
}
impl ToSql<SqlJson, Pg> for DbJson {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <serde_json::Value as ToSql<sql_types::Jsonb, Pg>>::to_sql(&self.0, out)
    }
}
impl FromSql<SqlJson, Pg> for DbJson {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <serde_json::Value as FromSql<sql_types::Jsonb, Pg>>::from_sql(bytes).map(DbJson)
    }
}
impl ToSql<SqlTimestamp, Pg> for DbTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <DateTime<Utc> as ToSql<sql_types::Timestamptz, Pg>>::to_sql(&self.0, out)
    }
}
impl FromSql<SqlTimestamp, Pg> for DbTime {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <DateTime<Utc> as FromSql<sql_types::Timestamptz, Pg>>::from_sql(bytes).map(DbTime)
    }
}

// --- SQLite: text encodings. ---

impl ToSql<SqlUuid, Sqlite> for DbUuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.hyphenated().to_string());
        Ok(IsNull::No)
    }
}
impl FromSql<SqlUuid, Sqlite> for DbUuid {
    fn from_sql(value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        Ok(DbUuid(Uuid::parse_str(&sqlite_text(value)?)?))
    }
}
impl ToSql<SqlJson, Sqlite> for DbJson {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(serde_json::to_string(&self.0)?);
        Ok(IsNull::No)
    }
}
impl FromSql<SqlJson, Sqlite> for DbJson {
    fn from_sql(value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        Ok(DbJson(serde_json::from_str(&sqlite_text(value)?)?))
    }
}
impl ToSql<SqlTimestamp, Sqlite> for DbTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(sqlite_timestamp(&self.0));
        Ok(IsNull::No)
    }
}
impl FromSql<SqlTimestamp, Sqlite> for DbTime {
    fn from_sql(value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        let text = sqlite_text(value)?;
        Ok(DbTime(
            DateTime::parse_from_rfc3339(&text)?.with_timezone(&Utc),
        ))
    }
}

// --- The bridge to the backend generated by `#[derive(MultiConnection)]`. ---

macro_rules! bridge_to_multi_backend {
    ($sql:ty, $rust:ty) => {
        impl HasSqlType<$sql> for MultiBackend {
            fn metadata(lookup: &mut Self::MetadataLookup) -> Self::TypeMetadata {
                MultiBackend::lookup_sql_type::<$sql>(lookup)
            }
        }
        impl FromSql<$sql, MultiBackend> for $rust {
            fn from_sql(
                bytes: <MultiBackend as Backend>::RawValue<'_>,
            ) -> deserialize::Result<Self> {
                bytes.from_sql::<$rust, $sql>()
            }
        }
        impl ToSql<$sql, MultiBackend> for $rust {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
                out.set_value((<$sql>::default(), self));
                Ok(IsNull::No)
            }
        }
    };
}

impl Default for SqlUuid {
    fn default() -> Self {
        SqlUuid
    }
}
impl Default for SqlJson {
    fn default() -> Self {
        SqlJson
    }
}
impl Default for SqlTimestamp {
    fn default() -> Self {
        SqlTimestamp
    }
}

bridge_to_multi_backend!(SqlUuid, DbUuid);
bridge_to_multi_backend!(SqlJson, DbJson);
bridge_to_multi_backend!(SqlTimestamp, DbTime);
