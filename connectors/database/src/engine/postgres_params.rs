//! PostgreSQL: JSON parameters bound as the types the server expects.
//!
//! JSON has strings, numbers, booleans and null; a query compares `$1` with a
//! `date`, a `uuid` or a `numeric`. PostgreSQL infers each parameter's type from
//! the statement, so the connector asks it (a Parse/Describe of the statement)
//! and converts each value to that type before binding: `placed_at > $1` works
//! with `"2025-03-01"` without a `$1::date` cast. A string that does not read as
//! the inferred type is refused naming the parameter, the type and the forms
//! accepted; a type the connector has no conversion for gets the value as text,
//! and the server's own message if that does not fit.
//!
//! sqlx keeps prepared statements per connection and finds them by SQL text
//! alone, binding later values in the kept statement's types. So the statement
//! as the agent wrote it is never kept: it is asked about under a text of its own
//! (the SQL and a trailing comment), kept under that text with the inferred
//! types, and executed under that text only when every value binds as exactly its
//! inferred type (one round trip, as a kept statement should be). Otherwise it is
//! prepared afresh, with the values' own types, for that run alone.

use std::str::FromStr;

use bigdecimal::BigDecimal;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgColumn, PgConnection, PgStatement, PgTypeInfo,
};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{Either, Executor, Postgres, Statement, TypeInfo};
use uuid::Uuid;

use crate::error::Error;

/// One parameter, as the value it is bound with: each variant holds a type sqlx
/// binds, and its PostgreSQL type is that type's (see [`Param::type_info`]).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Param {
    /// NULL of the type the server infers.
    Null,
    Bool(bool),
    Int2(i16),
    Int4(i32),
    Int(i64),
    Float4(f32),
    Float(f64),
    Numeric(BigDecimal),
    Text(String),
    Date(NaiveDate),
    Time(NaiveTime),
    /// Without a zone: as a `timestamp`, which PostgreSQL reads in the session's
    /// time zone where a `timestamptz` is expected (as it would a literal).
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<FixedOffset>),
    Uuid(Uuid),
    /// As `jsonb`.
    Json(Json<serde_json::Value>),
}

/// `$body` with `$v` bound to the value inside a non-NULL `$param`, `$null` for NULL.
macro_rules! with_value {
    ($param:expr, $v:ident => $body:expr, null => $null:expr) => {
        match $param {
            Param::Null => $null,
            Param::Bool($v) => $body,
            Param::Int2($v) => $body,
            Param::Int4($v) => $body,
            Param::Int($v) => $body,
            Param::Float4($v) => $body,
            Param::Float($v) => $body,
            Param::Numeric($v) => $body,
            Param::Text($v) => $body,
            Param::Date($v) => $body,
            Param::Time($v) => $body,
            Param::Timestamp($v) => $body,
            Param::TimestampTz($v) => $body,
            Param::Uuid($v) => $body,
            Param::Json($v) => $body,
        }
    };
}

impl Param {
    /// The PostgreSQL type the value is bound as; `None` for NULL, whose type the
    /// server infers from the context.
    fn type_info(&self) -> Option<PgTypeInfo> {
        fn of<T: sqlx::Type<Postgres>>(_: &T) -> PgTypeInfo {
            T::type_info()
        }
        with_value!(self, v => Some(of(v)), null => None)
    }

    /// Whether the value binds as exactly the type named `type_name`, so it can go
    /// into a statement prepared with that type.
    fn binds_as(&self, type_name: &str) -> bool {
        self.type_info().is_none_or(|bound| {
            bound.name() == type_name
                // text, varchar and bpchar share one binary form
                || (bound.name() == "TEXT" && is_text(type_name))
        })
    }
}

/// Binds as the type its value has (`produces`); NULL as "unspecified" (type 0),
/// so `INSERT INTO t (int_col) VALUES ($1)` with null works.
impl sqlx::Type<Postgres> for Param {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(0))
    }
}

impl sqlx::Encode<'_, Postgres> for Param {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        fn encode<'q, T: sqlx::Encode<'q, Postgres>>(
            value: &T,
            buf: &mut PgArgumentBuffer,
        ) -> Result<IsNull, BoxDynError> {
            value.encode_by_ref(buf)
        }
        with_value!(self, v => encode(v, buf), null => Ok(IsNull::Yes))
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        self.type_info()
    }
}

/// Text-like types: a value for one of them is written as text.
fn is_text(type_name: &str) -> bool {
    matches!(type_name, "TEXT" | "VARCHAR" | "BPCHAR" | "NAME")
}

/// A statement with its parameters converted, ready to run.
pub(super) struct Prepared {
    /// The text the inferred statement is kept under.
    probe: String,
    /// The statement as PostgreSQL infers it.
    statement: PgStatement<'static>,
    params: Vec<Param>,
    /// Every parameter binds as exactly the type inferred for it.
    exact: bool,
}

impl Prepared {
    /// Asks PostgreSQL about `sql` (once per connection and text: the answer is
    /// kept) and converts `params` to the types it infers.
    pub(super) async fn new(
        conn: &mut PgConnection,
        sql: &str,
        params: &[serde_json::Value],
    ) -> Result<Self, Error> {
        let probe = format!("{sql}\n-- switchboard: parameter and column types");
        let statement = Statement::to_owned(&conn.prepare(&probe).await?);
        let types = parameter_types(&statement);
        let params = convert(params, &types)?;
        let exact = params.len() == types.len()
            && params
                .iter()
                .zip(&types)
                .all(|(param, type_name)| param.binds_as(type_name));
        Ok(Self {
            probe,
            statement,
            params,
            exact,
        })
    }

    /// The query to run: under the kept text when the types allow, else `sql`
    /// prepared for this run alone.
    pub(super) fn query<'q>(&'q self, sql: &'q str) -> Query<'q, Postgres, PgArguments> {
        let query = if self.exact {
            sqlx::query(&self.probe)
        } else {
            sqlx::query(sql).persistent(false)
        };
        self.params.iter().fold(query, Query::bind)
    }

    /// The result columns PostgreSQL announced.
    pub(super) fn columns(&self) -> &[PgColumn] {
        self.statement.columns()
    }
}

/// The inferred type names of `statement`'s parameters, e.g. `DATE`.
fn parameter_types(statement: &PgStatement<'_>) -> Vec<String> {
    match statement.parameters() {
        Some(Either::Left(types)) => types.iter().map(|t| t.name().to_owned()).collect(),
        _ => Vec::new(),
    }
}

/// Converts every parameter for the type inferred for it (`types`, by position;
/// missing entries mean "no hint").
fn convert(params: &[serde_json::Value], types: &[String]) -> Result<Vec<Param>, Error> {
    params
        .iter()
        .enumerate()
        .map(|(i, value)| convert_one(i + 1, value, types.get(i).map_or("", String::as_str)))
        .collect()
}

fn convert_one(
    position: usize,
    value: &serde_json::Value,
    type_name: &str,
) -> Result<Param, Error> {
    use serde_json::Value as J;
    Ok(match value {
        J::Null => Param::Null,
        J::Bool(b) if is_text(type_name) => Param::Text(b.to_string()),
        J::Bool(b) => Param::Bool(*b),
        J::Number(n) if is_text(type_name) => Param::Text(n.to_string()),
        J::Number(n) => match type_name {
            "NUMERIC" => BigDecimal::from_str(&n.to_string())
                .map(Param::Numeric)
                .unwrap_or_else(|_| number(n)),
            "FLOAT4" | "FLOAT8" => n
                .as_f64()
                .map_or_else(|| number(n), |f| float(f, type_name)),
            "INT2" | "INT4" => n
                .as_i64()
                .map_or_else(|| number(n), |i| integer(i, type_name)),
            "JSON" | "JSONB" => Param::Json(Json(value.clone())),
            _ => number(n),
        },
        J::String(s) => string(position, s, type_name)?,
        other => Param::Json(Json(other.clone())),
    })
}

/// An integer for an `int2`, `int4` or `int8` parameter, in that width when it
/// fits (else as `int8`, for the server to compare or refuse).
fn integer(i: i64, type_name: &str) -> Param {
    match type_name {
        "INT2" => i16::try_from(i).map_or(Param::Int(i), Param::Int2),
        "INT4" => i32::try_from(i).map_or(Param::Int(i), Param::Int4),
        _ => Param::Int(i),
    }
}

/// A number for a `float4` or `float8` parameter, in that precision.
fn float(f: f64, type_name: &str) -> Param {
    if type_name == "FLOAT4" {
        // Narrowed to the column's precision, as PostgreSQL would.
        #[allow(clippy::cast_possible_truncation)]
        Param::Float4(f as f32)
    } else {
        Param::Float(f)
    }
}

/// A number bound by its own kind: integers as `int8`, others as `float8`.
fn number(n: &serde_json::Number) -> Param {
    match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => Param::Int(i),
        (None, Some(f)) => Param::Float(f),
        _ => Param::Text(n.to_string()),
    }
}

/// A string for a parameter of type `type_name`.
fn string(position: usize, s: &str, type_name: &str) -> Result<Param, Error> {
    let text = s.trim();
    let refuse = |forms: &str| {
        Error::InvalidArgument(format!(
            "parameter ${position} is used as {type_name}, and {s:?} is not {forms}; pass it in that form, or cast it in the SQL (e.g. ${position}::{})",
            type_name.to_lowercase()
        ))
    };
    Ok(match type_name {
        "DATE" => Param::Date(date(text).ok_or_else(|| refuse("a date (YYYY-MM-DD)"))?),
        "TIME" => Param::Time(time(text).ok_or_else(|| refuse("a time (HH:MM[:SS[.f]])"))?),
        "TIMESTAMP" => match timestamp_tz(text) {
            // A zone given for a timestamp without one is ignored, as PostgreSQL does.
            Some(at) => Param::Timestamp(at.naive_local()),
            None => Param::Timestamp(
                timestamp(text).ok_or_else(|| refuse("a timestamp (YYYY-MM-DD[THH:MM[:SS[.f]]])"))?,
            ),
        },
        "TIMESTAMPTZ" => match timestamp_tz(text) {
            Some(at) => Param::TimestampTz(at),
            None => Param::Timestamp(timestamp(text).ok_or_else(|| {
                refuse("a timestamp (YYYY-MM-DD[THH:MM[:SS[.f]]] with an optional zone such as Z or +02:00)")
            })?),
        },
        "UUID" => Param::Uuid(Uuid::parse_str(text).map_err(|_| refuse("a UUID"))?),
        "NUMERIC" => Param::Numeric(BigDecimal::from_str(text).map_err(|_| refuse("a number"))?),
        "INT2" | "INT4" | "INT8" => integer(text.parse().map_err(|_| refuse("an integer"))?, type_name),
        "FLOAT4" | "FLOAT8" => float(text.parse().map_err(|_| refuse("a number"))?, type_name),
        "BOOL" => Param::Bool(match text.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "on" | "1" => true,
            "false" | "f" | "no" | "n" | "off" | "0" => false,
            _ => return Err(refuse("a boolean (true or false)")),
        }),
        // JSON text is parsed, as PostgreSQL parses a literal; anything else is a
        // JSON string.
        "JSON" | "JSONB" => Param::Json(Json(
            serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(s.to_owned())),
        )),
        _ => Param::Text(s.to_owned()),
    })
}

fn date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

fn time(text: &str) -> Option<NaiveTime> {
    ["%H:%M:%S%.f", "%H:%M"]
        .iter()
        .find_map(|format| NaiveTime::parse_from_str(text, format).ok())
}

fn timestamp(text: &str) -> Option<NaiveDateTime> {
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .or_else(|| date(text).and_then(|d| d.and_hms_opt(0, 0, 0)))
}

fn timestamp_tz(text: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text).ok().or_else(|| {
        [
            "%Y-%m-%d %H:%M:%S%.f%:z",
            "%Y-%m-%d %H:%M:%S%.f%#z",
            "%Y-%m-%dT%H:%M:%S%.f%#z",
        ]
        .iter()
        .find_map(|format| DateTime::parse_from_str(text, format).ok())
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn one(value: serde_json::Value, type_name: &str) -> Result<Param, Error> {
        convert(&[value], &[type_name.to_owned()]).map(|mut p| p.remove(0))
    }

    #[test]
    fn strings_become_the_inferred_type() {
        assert_eq!(
            one(json!("2025-03-01"), "DATE").ok(),
            NaiveDate::from_ymd_opt(2025, 3, 1).map(Param::Date)
        );
        assert_eq!(
            one(json!("2025-03-01"), "TIMESTAMPTZ").ok(),
            NaiveDate::from_ymd_opt(2025, 3, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(Param::Timestamp)
        );
        assert!(matches!(
            one(json!("2025-03-01T10:00:00Z"), "TIMESTAMPTZ"),
            Ok(Param::TimestampTz(_))
        ));
        assert!(matches!(
            one(json!("2025-03-01 10:00:00+02"), "TIMESTAMPTZ"),
            Ok(Param::TimestampTz(_))
        ));
        assert_eq!(
            one(json!("2025-03-01T10:00:00+02:00"), "TIMESTAMP").ok(),
            NaiveDate::from_ymd_opt(2025, 3, 1)
                .and_then(|d| d.and_hms_opt(10, 0, 0))
                .map(Param::Timestamp)
        );
        assert!(matches!(
            one(json!("67e55044-10b1-426f-9247-bb680e5fe0c8"), "UUID"),
            Ok(Param::Uuid(_))
        ));
        assert_eq!(
            one(json!("12.50"), "NUMERIC").ok(),
            BigDecimal::from_str("12.50").ok().map(Param::Numeric)
        );
        assert_eq!(one(json!(" 42 "), "INT4").ok(), Some(Param::Int4(42)));
        assert_eq!(one(json!("42"), "INT8").ok(), Some(Param::Int(42)));
        assert_eq!(one(json!("off"), "BOOL").ok(), Some(Param::Bool(false)));
        assert_eq!(
            one(json!("{\"k\": 1}"), "JSONB").ok(),
            Some(Param::Json(Json(json!({"k": 1}))))
        );
        assert_eq!(
            one(json!("plain"), "JSONB").ok(),
            Some(Param::Json(Json(json!("plain"))))
        );
        assert_eq!(
            one(json!("abc"), "TEXT").ok(),
            Some(Param::Text("abc".into()))
        );
        // A type without a conversion gets the text, for the server to read.
        assert_eq!(
            one(json!("10.0.0.1"), "INET").ok(),
            Some(Param::Text("10.0.0.1".into()))
        );
    }

    #[test]
    fn numbers_follow_the_inferred_type() {
        assert_eq!(
            one(json!(12.5), "NUMERIC").ok(),
            BigDecimal::from_str("12.5").ok().map(Param::Numeric)
        );
        assert_eq!(one(json!(5), "TEXT").ok(), Some(Param::Text("5".into())));
        assert_eq!(one(json!(5), "FLOAT8").ok(), Some(Param::Float(5.0)));
        assert_eq!(one(json!(5), "INT4").ok(), Some(Param::Int4(5)));
        assert_eq!(one(json!(5), "INT2").ok(), Some(Param::Int2(5)));
        assert_eq!(one(json!(70000), "INT2").ok(), Some(Param::Int(70000)));
        assert_eq!(one(json!(1.5), "FLOAT4").ok(), Some(Param::Float4(1.5)));
        assert_eq!(one(json!(5), "").ok(), Some(Param::Int(5)));
        assert_eq!(
            one(json!(true), "TEXT").ok(),
            Some(Param::Text("true".into()))
        );
        assert_eq!(one(json!(null), "DATE").ok(), Some(Param::Null));
    }

    #[test]
    fn a_string_that_is_not_the_inferred_type_is_refused_by_position() {
        let error = one(json!("March 1st"), "DATE").expect_err("not a date");
        let message = error.to_string();
        assert!(
            message.contains("parameter $1 is used as DATE")
                && message.contains("YYYY-MM-DD")
                && message.contains("$1::date"),
            "{message}"
        );
        assert!(one(json!("nope"), "UUID").is_err());
        assert!(one(json!("1.5"), "INT8").is_err());
        assert!(one(json!("maybe"), "BOOL").is_err());
    }

    #[test]
    fn only_values_of_exactly_the_inferred_type_may_use_the_kept_statement() {
        assert!(Param::Null.binds_as("DATE"));
        assert!(Param::Text("x".into()).binds_as("VARCHAR"));
        assert!(!Param::Text("x".into()).binds_as("INET"));
        assert!(!Param::Int(1).binds_as("INT4"));
        assert!(Param::Int4(1).binds_as("INT4"));
        assert!(!Param::Json(Json(json!({}))).binds_as("JSON"));
        assert!(Param::Json(Json(json!({}))).binds_as("JSONB"));
        assert!(Param::Float4(1.0).binds_as("FLOAT4"));
        assert!(Param::Numeric(BigDecimal::from(1)).binds_as("NUMERIC"));
        assert!(
            !NaiveDate::from_ymd_opt(2025, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(Param::Timestamp)
                .is_some_and(|p| p.binds_as("TIMESTAMPTZ"))
        );
    }
}
