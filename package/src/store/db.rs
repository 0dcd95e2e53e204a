//! One connection to the job store, whichever database holds it: statements are written once
//! (SQLite's `?N` placeholders, SQL both databases run), their arguments and rows are
//! [`Value`]s, and a write transaction takes the store's single writer lock on either.

use postgres::types::{IsNull, ToSql, Type};

use crate::error::{ApiError, Result};

/// A statement argument or a column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer (SQLite INTEGER, PostgreSQL SMALLINT/INTEGER/BIGINT/BOOLEAN).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes (SQLite BLOB, PostgreSQL BYTEA).
    Bytes(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl<T: Clone + Into<Value>> From<&Option<T>> for Value {
    fn from(v: &Option<T>) -> Self {
        v.clone().into()
    }
}

/// The arguments of a statement: `args![a, b]` is `&[Value::from(a), Value::from(b)]`.
#[macro_export]
macro_rules! args {
    ($($v:expr),* $(,)?) => { &[$($crate::store::Value::from($v)),*][..] };
}

/// A column that is not of the type asked for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("expected {expected}, found {found:?}")]
pub struct TypeMismatch {
    /// What was asked for.
    pub expected: &'static str,
    /// What the column holds.
    pub found: Value,
}

/// A column type a [`Row`] converts to.
pub trait FromValue: Sized {
    /// The value, or why it is not one of these.
    fn from_value(v: &Value) -> std::result::Result<Self, TypeMismatch>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> std::result::Result<Self, TypeMismatch> {
        match v {
            Value::Int(i) => Ok(*i),
            other => Err(TypeMismatch { expected: "an integer", found: other.clone() }),
        }
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> std::result::Result<Self, TypeMismatch> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(TypeMismatch { expected: "text", found: other.clone() }),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> std::result::Result<Self, TypeMismatch> {
        match v {
            Value::Bytes(b) => Ok(b.clone()),
            other => Err(TypeMismatch { expected: "bytes", found: other.clone() }),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> std::result::Result<Self, TypeMismatch> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row(Vec<Value>);

impl Row {
    /// Column `i` as a `T`; an error names the column.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T> {
        let v = self.0.get(i).ok_or_else(|| ApiError::internal(format!("job store: no column {i} in a row")))?;
        T::from_value(v).map_err(|e| ApiError::internal(format!("job store: column {i}: {e}")))
    }
}

/// The connection of a [`Db`].
pub(crate) enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<r2d2::PooledConnection<super::pg::Manager>>),
}

/// The key of PostgreSQL's transaction-scoped advisory lock every write transaction takes:
/// writes go one at a time across every server and worker of the database, as SQLite's
/// `BEGIN IMMEDIATE` makes them on one machine (readers never wait: MVCC).
const WRITER_LOCK: i64 = 0x6564_6765_7061_636b; // "edgepack"

/// A connection to the job store (see [`crate::store::Store::connect`]).
pub struct Db {
    pub(crate) conn: Conn,
}

impl Db {
    /// Runs a statement; the number of rows it changed.
    pub fn execute(&mut self, sql: &str, args: &[Value]) -> Result<usize> {
        match &mut self.conn {
            Conn::Sqlite(c) => Ok(c.execute(sql, rusqlite::params_from_iter(args))?),
            Conn::Postgres(c) => {
                let st = c.statement(&pg_sql(sql))?;
                Ok(c.client.execute(&st, &pg_args(args))? as usize)
            }
        }
    }

    /// Every row of a query.
    pub fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>> {
        match &mut self.conn {
            Conn::Sqlite(c) => {
                let mut st = c.prepare(sql)?;
                let n = st.column_count();
                let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
                    (0..n).map(|i| r.get_ref(i).map(sqlite_value)).collect::<rusqlite::Result<Vec<_>>>().map(Row)
                })?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            }
            Conn::Postgres(c) => {
                let st = c.statement(&pg_sql(sql))?;
                let rows = c.client.query(&st, &pg_args(args))?;
                rows.iter().map(pg_row).collect()
            }
        }
    }

    /// The first row of a query, if any.
    pub fn query_opt(&mut self, sql: &str, args: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// The first row of a query that always has one (`COUNT(*)`, …).
    pub fn query_one(&mut self, sql: &str, args: &[Value]) -> Result<Row> {
        self.query_opt(sql, args)?.ok_or_else(|| ApiError::internal(format!("job store: no row from {sql}")))
    }

    /// Runs several statements without arguments (a schema, a migration).
    pub(crate) fn batch(&mut self, sql: &str) -> Result<()> {
        match &mut self.conn {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(c) => Ok(c.client.batch_execute(sql)?),
        }
    }

    /// Begins a write transaction: the store's writer lock is held until it commits or is
    /// dropped (rolled back).
    pub fn write(&mut self) -> Result<Tx<'_>> {
        match &self.conn {
            Conn::Sqlite(_) => self.batch("BEGIN IMMEDIATE")?,
            Conn::Postgres(_) => self.batch(&format!("BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK})"))?,
        }
        Ok(Tx { db: self, open: true })
    }

    /// What a subquery that picks rows to claim ends with: PostgreSQL's `FOR UPDATE SKIP
    /// LOCKED` (a row another transaction holds is skipped, not waited for); nothing on SQLite,
    /// whose writers run one at a time.
    pub fn skip_locked(&self) -> &'static str {
        match self.conn {
            Conn::Sqlite(_) => "",
            Conn::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// A write transaction (see [`Db::write`]): dereferences to its [`Db`]; rolled back when
/// dropped without [`Tx::commit`].
pub struct Tx<'a> {
    db: &'a mut Db,
    open: bool,
}

impl Tx<'_> {
    /// Commits.
    pub fn commit(mut self) -> Result<()> {
        self.open = false;
        self.db.batch("COMMIT")
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl std::ops::DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.db.batch("ROLLBACK");
        }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Bytes(b) => ValueRef::Blob(b),
        }))
    }
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        // No column of the store is REAL; a computed one reads as its text.
        ValueRef::Real(f) => Value::Text(f.to_string()),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Value::Text(s) => s.to_sql(ty, out),
            Value::Bytes(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2
                | Type::INT4
                | Type::INT8
                | Type::BOOL
                | Type::TEXT
                | Type::VARCHAR
                | Type::BYTEA
                | Type::UNKNOWN
        )
    }

    postgres::types::to_sql_checked!();
}

/// SQLite's `?N` placeholders as PostgreSQL's `$N` (the store's statements have no `?`
/// inside string literals).
fn pg_sql(sql: &str) -> String {
    sql.replace('?', "$")
}

fn pg_args(args: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

fn pg_row(r: &postgres::Row) -> Result<Row> {
    let value = |i: usize, ty: &Type| -> std::result::Result<Value, postgres::Error> {
        Ok(match *ty {
            Type::INT2 => r.try_get::<_, Option<i16>>(i)?.map_or(Value::Null, |v| Value::Int(v.into())),
            Type::INT4 => r.try_get::<_, Option<i32>>(i)?.map_or(Value::Null, |v| Value::Int(v.into())),
            Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map_or(Value::Null, Value::Int),
            Type::BOOL => r.try_get::<_, Option<bool>>(i)?.map_or(Value::Null, |v| Value::Int(v.into())),
            Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.map_or(Value::Null, Value::Bytes),
            _ => r.try_get::<_, Option<String>>(i)?.map_or(Value::Null, Value::Text),
        })
    };
    r.columns()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            value(i, c.type_())
                .map_err(|e| ApiError::internal(format!("job store: column {} of type {}: {e}", c.name(), c.type_())))
        })
        .collect::<Result<_>>()
        .map(Row)
}

#[cfg(test)]
mod tests {
    use super::{pg_sql, Row, Value};

    #[test]
    fn rows_convert_and_name_what_does_not() {
        let r = Row(vec![Value::Int(7), Value::Text("a".into()), Value::Null, Value::Bytes(vec![1])]);
        assert_eq!(r.get::<i64>(0).unwrap(), 7);
        assert_eq!(r.get::<String>(1).unwrap(), "a");
        assert_eq!(r.get::<Option<i64>>(2).unwrap(), None);
        assert_eq!(r.get::<Option<String>>(1).unwrap().as_deref(), Some("a"));
        assert_eq!(r.get::<Vec<u8>>(3).unwrap(), vec![1]);
        let e = r.get::<i64>(1).unwrap_err();
        assert!(e.message.contains("column 1: expected an integer, found Text(\"a\")"), "{e}");
        assert!(r.get::<String>(2).is_err(), "NULL is not text");
        assert!(r.get::<i64>(9).unwrap_err().message.contains("no column 9"));
        assert_eq!(Value::from(None::<String>), Value::Null);
        assert_eq!(Value::from(&Some(3i64)), Value::Int(3));
        assert_eq!(Value::from(&b"xy"[..]), Value::Bytes(b"xy".to_vec()));
    }

    #[test]
    fn placeholders_become_postgresql_ones() {
        assert_eq!(pg_sql("a = ?1 AND b IN (?2, ?12)"), "a = $1 AND b IN ($2, $12)");
    }
}
