use thiserror::Error;

/// Errors of the store layer. The API maps each variant to a status in one place.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an unexpected error.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Applying the migrations failed.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Another live workspace under the same parent already has this name
    /// (the `workspaces_parent_name_uniq` index).
    #[error("a workspace with this name already exists under the same parent")]
    DuplicateWorkspaceName,
    /// The referenced parent workspace does not exist (or is removed).
    #[error("parent workspace not found")]
    ParentNotFound,
    /// The row the operation targets does not exist.
    #[error("not found")]
    NotFound,
    /// A secret could not be encrypted or decrypted.
    #[error("secret crypto failed")]
    Crypto(#[from] crate::crypto::CryptoError),
    /// The database was written by the Go original but lacks columns our baseline needs
    /// (`table.column` each), so it cannot be adopted.
    #[error(
        "the database written by the Go original lacks {}: upgrade it with the final Go release \
         (or add these columns) before starting workspace-server",
        missing.join(", ")
    )]
    IncompatibleSchema { missing: Vec<String> },
    /// The error of a read that this caller shared with others ([`crate::batch`]).
    #[error(transparent)]
    Shared(std::sync::Arc<StoreError>),
    /// A read this caller shared ended without an answer (its task panicked or the runtime
    /// shut down).
    #[error("a shared read ended without an answer")]
    ReadAbandoned,
}

impl StoreError {
    /// The error itself, for one shared with other callers.
    pub fn root(&self) -> &StoreError {
        match self {
            StoreError::Shared(error) => error.root(),
            error => error,
        }
    }

    /// Whether the database could not be reached or ended the session (a restart, a failover, a
    /// full pool): the request may succeed when retried, so it is not a bug of ours.
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Database(error) = self.root() else {
            return false;
        };
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed => true,
            // SQLSTATE class 08 (connection exception) and 57P (admin shutdown, crash shutdown,
            // cannot connect now).
            sqlx::Error::Database(error) => error
                .code()
                .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
            _ => false,
        }
    }

    /// Whether a foreign key named a row that does not exist (SQLSTATE 23503).
    pub fn is_missing_reference(&self) -> bool {
        let StoreError::Database(sqlx::Error::Database(error)) = self.root() else {
            return false;
        };
        error.code().is_some_and(|code| code == "23503")
    }

    /// Whether a unique index refused the row (SQLSTATE 23505).
    pub fn is_unique_violation(&self) -> bool {
        let StoreError::Database(sqlx::Error::Database(error)) = self.root() else {
            return false;
        };
        error.code().is_some_and(|code| code == "23505")
    }

    /// The name of the constraint or index a database error names, if any.
    pub fn constraint(&self) -> Option<&str> {
        let StoreError::Database(sqlx::Error::Database(error)) = self.root() else {
            return None;
        };
        error.constraint()
    }

    /// Whether PostgreSQL refused a text value it cannot store: a NUL character in `text`
    /// (SQLSTATE 22021) or `\u0000` in `jsonb` (22P05). The client sent it, so it is bad input.
    pub fn is_invalid_text(&self) -> bool {
        let StoreError::Database(sqlx::Error::Database(error)) = self.root() else {
            return false;
        };
        error
            .code()
            .is_some_and(|code| code == "22021" || code == "22P05")
    }
}
