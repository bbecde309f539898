//! The store's error type: every failure names the file, the table and the key involved.

use crate::model::Timestamp;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// redb could not open or create the file (missing directory, not a redb file, locked by
    /// another process, ...).
    #[error("cannot open state file {file}: {source}")]
    Open {
        file: String,
        #[source]
        source: redb::DatabaseError,
    },

    /// The file was written by a newer readyd.
    #[error(
        "state file {file} has schema version {found}, newer than the version {supported} this \
         readyd understands; run a newer readyd or point `data_file` at another file"
    )]
    SchemaTooNew {
        file: String,
        found: u32,
        supported: u32,
    },

    /// The file carries an older schema version that no migration covers.
    #[error(
        "state file {file} has schema version {found}, which this readyd (schema {supported}) \
         cannot migrate"
    )]
    SchemaUnsupported {
        file: String,
        found: u32,
        supported: u32,
    },

    /// The file is a redb database but not one readyd wrote.
    #[error("state file {file} is not a readyd state file: {reason}")]
    Foreign { file: String, reason: String },

    /// redb reported a failure (I/O, corruption, transaction state).
    #[error("storage error in {file} ({op} on table {table}): {source}")]
    Storage {
        file: String,
        table: String,
        op: &'static str,
        #[source]
        source: Box<redb::Error>,
    },

    /// A value could not be encoded as MessagePack.
    #[error("cannot encode {table}[{key}]: {source}")]
    Encode {
        table: String,
        key: String,
        #[source]
        source: Box<rmp_serde::encode::Error>,
    },

    /// A stored value could not be decoded (written by an incompatible version, or damaged).
    #[error("cannot decode {table}[{key}] in {file}: {source}")]
    Decode {
        file: String,
        table: String,
        key: String,
        #[source]
        source: Box<rmp_serde::decode::Error>,
    },

    /// A key part is empty or contains the separator.
    #[error("invalid key part {part:?} for table {table}: {reason}")]
    InvalidKey {
        table: String,
        part: String,
        reason: &'static str,
    },

    /// An operation refers to a record that does not exist.
    #[error("no {table} record with key {key}")]
    NotFound { table: String, key: String },

    /// `mark_outbox_sent` for an idempotency key that was already delivered: the message must
    /// not go out a second time.
    #[error("notification {idempotency_key} was already sent at {sent_at}")]
    AlreadySent {
        idempotency_key: String,
        sent_at: Timestamp,
    },

    /// A write would break an invariant of the state (for example a second open task for the
    /// same entity, scorecard and rule).
    #[error("conflict in {table}[{key}]: {reason}")]
    Conflict {
        table: String,
        key: String,
        reason: String,
    },

    /// `put_meta` on a key the store manages itself.
    #[error("meta key {key:?} is reserved for the store")]
    ReservedMetaKey { key: String },

    /// The writer task has stopped (shut down, or it panicked); nothing was written.
    #[error("the store writer has stopped; the batch was not written")]
    WriterClosed,
}

impl StoreError {
    pub(crate) fn storage(
        file: &str,
        table: &str,
        op: &'static str,
        source: impl Into<redb::Error>,
    ) -> Self {
        StoreError::Storage {
            file: file.to_owned(),
            table: table.to_owned(),
            op,
            source: Box::new(source.into()),
        }
    }
}

/// Wraps a redb result with the file, table and operation.
pub(super) trait Context<T> {
    fn ctx(self, file: &str, table: &str, op: &'static str) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> Context<T> for Result<T, E> {
    fn ctx(self, file: &str, table: &str, op: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::storage(file, table, op, e))
    }
}
