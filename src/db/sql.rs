//! SQL text that both backends read: `$N` placeholders (SQLite reads them too; PostgreSQL reads
//! nothing else) and the few phrases the two dialects spell differently.

use sqlx::any::{Any, AnyArguments};
use sqlx::{Arguments, Encode, Type};
use std::fmt::Write as _;

/// Which database a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of `conn`.
    pub(crate) fn of(conn: &sqlx::AnyConnection) -> Self {
        if conn.backend_name().eq_ignore_ascii_case("PostgreSQL") { Backend::Postgres } else { Backend::Sqlite }
    }

    /// The backend a database URL names: `postgres://` or `postgresql://` is PostgreSQL,
    /// anything else (`sqlite:`) SQLite.
    pub fn of_url(url: &str) -> Self {
        let settings = crate::settings::DatabaseSettings { url: url.to_string(), ..Default::default() };
        if settings.is_postgres() { Backend::Postgres } else { Backend::Sqlite }
    }

    /// The function that gives the largest of its arguments (SQLite's two-argument `MAX`).
    pub(crate) fn greatest(self) -> &'static str {
        match self {
            Backend::Sqlite => "MAX",
            Backend::Postgres => "GREATEST",
        }
    }

    /// A subquery of the text values of the JSON array bound at `$n`, for `x IN (...)`.
    pub(crate) fn json_values(self, n: usize) -> String {
        match self {
            Backend::Sqlite => format!("SELECT value FROM json_each(${n})"),
            Backend::Postgres => format!("SELECT value FROM json_array_elements_text(${n}::json) AS v(value)"),
        }
    }

    /// The text at JSON path `key` (one level) of the JSON text in `column`.
    pub(crate) fn json_text(self, column: &str, key: &str) -> String {
        match self {
            Backend::Sqlite => format!("json_extract({column}, '$.{key}')"),
            Backend::Postgres => format!("(({column})::json ->> '{key}')"),
        }
    }
}

/// A statement built in pieces, with `$N` placeholders numbered as values are bound.
pub(crate) struct Builder {
    sql: String,
    args: AnyArguments,
    error: Option<sqlx::error::BoxDynError>,
}

impl Builder {
    pub(crate) fn new(sql: impl Into<String>) -> Self {
        Self { sql: sql.into(), args: AnyArguments::default(), error: None }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, sql: impl std::fmt::Display) -> &mut Self {
        let _ = write!(self.sql, "{sql}");
        self
    }

    /// Appends the next placeholder and binds `v` to it.
    pub(crate) fn push_bind<'t, T: Encode<'t, Any> + Type<Any> + 't>(&mut self, v: T) -> &mut Self {
        if let Err(e) = self.args.add(v) {
            self.error.get_or_insert(e);
        }
        let _ = write!(self.sql, "${}", self.args.len());
        self
    }

    /// The statement, ready to run.
    pub(crate) fn build(self) -> Result<sqlx::query::Query<'static, Any, AnyArguments>, sqlx::Error> {
        match self.error {
            Some(e) => Err(sqlx::Error::Encode(e)),
            None => Ok(sqlx::query_with(sqlx::AssertSqlSafe(self.sql), self.args)),
        }
    }

    /// The statement, reading rows as `T`.
    pub(crate) fn build_query_as<T>(self) -> Result<sqlx::query::QueryAs<'static, Any, T, AnyArguments>, sqlx::Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        match self.error {
            Some(e) => Err(sqlx::Error::Encode(e)),
            None => Ok(sqlx::query_as_with(sqlx::AssertSqlSafe(self.sql), self.args)),
        }
    }
}
