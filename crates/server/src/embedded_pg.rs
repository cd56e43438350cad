//! The built-in PostgreSQL: used when `DATABASE_URL` is unset, so one command runs the server on
//! a fresh machine. It runs the machine's installed server binaries on `<data-dir>/postgres`,
//! listens on a Unix socket only (no TCP port), and is stopped when the server stops.
//!
//! PostgreSQL refuses to run as root; as root the cluster belongs to the `postgres` system user
//! and its programs run as that user.

use std::hash::{Hash, Hasher};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::unistd::{Uid, User};
use sqlx::migrate::MigrateDatabase;

/// The port only names the socket file (`.s.PGSQL.5432`); nothing listens on TCP.
const PORT: u16 = 5432;
const DATABASE: &str = "workspace_server";
const SUPERUSER: &str = "postgres";
/// `sun_path` holds 108 bytes including the terminating NUL.
const SOCKET_PATH_MAX: usize = 107;
/// Our settings, rewritten on every start and included from `postgresql.conf`.
const OVERRIDES_FILE: &str = "workspace-server.conf";
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The message when no server binaries exist (one clear line; `main` prints it and exits).
pub const NO_BINARIES: &str = "no PostgreSQL server binaries found: install PostgreSQL (apt-get install postgresql) or set DATABASE_URL";

/// A running built-in cluster. Stop it with [`EmbeddedPostgres::stop`]; `Drop` stops it too
/// (blocking) on paths that never reach the orderly shutdown.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bin_dir: PathBuf,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    /// The user the cluster runs as when we are root.
    owner: Option<User>,
    running: bool,
    /// Held while we use the cluster, so a second server on the same data dir refuses to start
    /// instead of sharing (and later stopping) our PostgreSQL.
    _lock: std::fs::File,
}

impl EmbeddedPostgres {
    /// Initialises `<data_dir>/postgres` on first use, starts the cluster (or adopts one a
    /// killed server left running) and creates the `workspace_server` database.
    pub async fn start(data_dir: &Path) -> anyhow::Result<Self> {
        let bin_dir = find_bin_dir().context(NO_BINARIES)?;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
        let data_dir = data_dir.canonicalize()?;
        let lock = lock_data_dir(&data_dir)?;
        let owner = cluster_owner()?;
        let pgdata = data_dir.join("postgres");
        let socket_dir = socket_dir_for(&pgdata);
        let mut cluster = EmbeddedPostgres {
            bin_dir,
            pgdata,
            socket_dir,
            owner,
            running: false,
            _lock: lock,
        };

        if let Some(owner) = &cluster.owner {
            allow_traversal(&data_dir, owner)?;
        }
        if !cluster.pgdata.join("PG_VERSION").exists() {
            cluster.initdb().await?;
        } else if let Some(owner) = &cluster.owner {
            chown_tree(&cluster.pgdata, owner)?;
        }
        cluster.prepare_socket_dir()?;
        cluster.write_overrides()?;

        if cluster.postmaster_running() {
            tracing::info!(pgdata = %cluster.pgdata.display(), "reusing the built-in PostgreSQL left running by a previous run");
        } else {
            cluster.remove_stale_lock_files()?;
            cluster.pg_ctl_start().await?;
        }
        cluster.running = true;
        cluster.create_database().await?;
        tracing::info!(
            pgdata = %cluster.pgdata.display(),
            socket_dir = %cluster.socket_dir.display(),
            bin_dir = %cluster.bin_dir.display(),
            "database: built-in PostgreSQL (set DATABASE_URL to use an external one)"
        );
        Ok(cluster)
    }

    /// The URL of the `workspace_server` database over the Unix socket.
    pub fn database_url(&self) -> String {
        socket_url(&self.socket_dir, DATABASE)
    }

    /// Stops the cluster (`pg_ctl stop -m fast`: running sessions are rolled back).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.running = false;
        if !self.postmaster_running() {
            tracing::warn!("the built-in PostgreSQL had already stopped");
            return Ok(());
        }
        let output = self
            .pg_ctl(["stop", "-m", "fast", "-w", "-t", "30"])
            .output()
            .await?;
        check(&output, "pg_ctl stop")?;
        if self.socket_dir != self.pgdata {
            // The short fallback dir under /tmp is ours alone; PostgreSQL may still be unlinking
            // its socket files when `pg_ctl stop` returns.
            let _ = tokio::fs::remove_dir_all(&self.socket_dir).await;
        }
        tracing::info!("built-in PostgreSQL stopped");
        Ok(())
    }

    async fn initdb(&self) -> anyhow::Result<()> {
        let pgdata = &self.pgdata;
        if pgdata.exists() && std::fs::read_dir(pgdata)?.next().is_some() {
            bail!(
                "{} exists but holds no PostgreSQL cluster (an interrupted first start?): remove it and start again",
                pgdata.display()
            );
        }
        std::fs::create_dir_all(pgdata)?;
        std::fs::set_permissions(pgdata, std::fs::Permissions::from_mode(0o700))?;
        if let Some(owner) = &self.owner {
            chown(pgdata, owner)?;
        }
        tracing::info!(pgdata = %pgdata.display(), "initialising the built-in PostgreSQL (first start)");
        let mut initdb = self.command("initdb");
        initdb
            .arg("-D")
            .arg(pgdata)
            .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8"]);
        check(&initdb.output().await?, "initdb")?;
        // Our settings live in a file of their own, rewritten on each start.
        let conf = pgdata.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)?;
        text.push_str(&format!("\ninclude_if_exists = '{OVERRIDES_FILE}'\n"));
        std::fs::write(&conf, text)?;
        Ok(())
    }

    fn write_overrides(&self) -> anyhow::Result<()> {
        let socket_dir = self.socket_dir.to_string_lossy().replace('\'', "''");
        let text = format!(
            "# Written by workspace-server on every start; edits are overwritten.\n\
             listen_addresses = ''\n\
             unix_socket_directories = '{socket_dir}'\n\
             port = {PORT}\n"
        );
        let path = self.pgdata.join(OVERRIDES_FILE);
        std::fs::write(&path, text)?;
        if let Some(owner) = &self.owner {
            chown(&path, owner)?;
        }
        Ok(())
    }

    fn prepare_socket_dir(&self) -> anyhow::Result<()> {
        if self.socket_dir == self.pgdata {
            return Ok(());
        }
        tracing::info!(
            socket_dir = %self.socket_dir.display(),
            "the data dir's path is too long for a Unix socket; using a short socket dir under /tmp"
        );
        std::fs::create_dir_all(&self.socket_dir)?;
        let expected_uid = self
            .owner
            .as_ref()
            .map_or_else(Uid::effective, |owner| owner.uid);
        if let Some(owner) = &self.owner {
            chown(&self.socket_dir, owner)?;
        }
        let metadata = std::fs::metadata(&self.socket_dir)?;
        if metadata.uid() != expected_uid.as_raw() {
            bail!(
                "{} belongs to another user; remove it",
                self.socket_dir.display()
            );
        }
        std::fs::set_permissions(&self.socket_dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(())
    }

    /// Whether the postmaster named in `postmaster.pid` runs. Stricter than `pg_ctl status`,
    /// which trusts any live pid: after a crash the pid may be a zombie nobody reaps (PID 1 of
    /// some containers) or belong to an unrelated process.
    fn postmaster_running(&self) -> bool {
        let Ok(text) = std::fs::read_to_string(self.pgdata.join("postmaster.pid")) else {
            return false;
        };
        let Some(pid) = text
            .lines()
            .next()
            .and_then(|line| line.trim().parse::<u32>().ok())
        else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // `pid (comm) state …`; the comm may contain spaces and parentheses.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let comm = head.split_once('(').map_or("", |(_, comm)| comm);
        let state = rest.split_whitespace().next().unwrap_or("");
        comm == "postgres" && state != "Z"
    }

    /// Removes lock files whose postmaster is gone, since PostgreSQL refuses to start while
    /// their pid is alive in any form (including a zombie).
    fn remove_stale_lock_files(&self) -> anyhow::Result<()> {
        let socket_lock = self.socket_dir.join(format!(".s.PGSQL.{PORT}.lock"));
        for path in [self.pgdata.join("postmaster.pid"), socket_lock] {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(file = %path.display(), "removed a stale PostgreSQL lock file (after a crash)")
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(error).context(format!("cannot remove {}", path.display()));
                }
            }
        }
        Ok(())
    }

    async fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let log = self.pgdata.join("server.log");
        let mut start = self.pg_ctl(["start", "-w", "-t", &START_TIMEOUT.as_secs().to_string()]);
        start.arg("-l").arg(&log);
        let output = start.output().await?;
        if !output.status.success() {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(10).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "pg_ctl start failed ({}); server log:\n{}",
                output.status,
                tail.join("\n")
            );
        }
        Ok(())
    }

    async fn create_database(&self) -> anyhow::Result<()> {
        let url = self.database_url();
        if !sqlx::Postgres::database_exists(&url)
            .await
            .context("cannot reach the built-in PostgreSQL")?
        {
            sqlx::Postgres::create_database(&url)
                .await
                .context("cannot create the database")?;
        }
        Ok(())
    }

    fn pg_ctl<'a>(&self, args: impl IntoIterator<Item = &'a str>) -> tokio::process::Command {
        let mut command = self.command("pg_ctl");
        command.arg("-D").arg(&self.pgdata).args(args);
        command
    }

    /// A server program, run as the cluster's owner when we are root.
    fn command(&self, program: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(self.bin_dir.join(program));
        // The owner may not be allowed into our working directory.
        command.current_dir("/").env_remove("PGDATA");
        if let Some(owner) = &self.owner {
            command.uid(owner.uid.as_raw()).gid(owner.gid.as_raw());
        }
        command
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        let mut command = std::process::Command::new(self.bin_dir.join("pg_ctl"));
        command
            .arg("-D")
            .arg(&self.pgdata)
            .args(["stop", "-m", "fast", "-w"])
            .current_dir("/");
        if let Some(owner) = &self.owner {
            use std::os::unix::process::CommandExt;
            command.uid(owner.uid.as_raw()).gid(owner.gid.as_raw());
        }
        if let Err(error) = command.output() {
            tracing::error!(error = %error, "could not stop the built-in PostgreSQL");
        }
    }
}

fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("postgres.lock");
    let file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another workspace-server is using the built-in PostgreSQL in {}: stop it or choose another --data-dir",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).context(format!("cannot lock {}", path.display()))
        }
    }
}

/// The user the cluster must run as: `postgres` when we are root, else ourselves (`None`).
fn cluster_owner() -> anyhow::Result<Option<User>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let user = User::from_name(SUPERUSER)?.context(
        "running as root, and PostgreSQL refuses root: create a `postgres` system user (apt-get install postgresql does) or set DATABASE_URL",
    )?;
    Ok(Some(user))
}

/// `initdb`, `pg_ctl` and `postgres` from PATH, else the highest `/usr/lib/postgresql/*/bin`.
pub fn find_bin_dir() -> Option<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|name| dir.join(name).is_file())
    };
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(dir) = on_path.into_iter().find(|dir| has_all(dir)) {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_all(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The socket lives in the cluster's own directory unless that path is too long for a Unix
/// socket; then in a short directory under /tmp named after a hash of the cluster's path.
fn socket_dir_for(pgdata: &Path) -> PathBuf {
    let socket_file = format!(".s.PGSQL.{PORT}");
    if pgdata.as_os_str().len() + 1 + socket_file.len() <= SOCKET_PATH_MAX {
        return pgdata.to_path_buf();
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    pgdata.hash(&mut hasher);
    PathBuf::from(format!("/tmp/workspace-server-pg-{:016x}", hasher.finish()))
}

/// `postgres://postgres@localhost/<db>?host=<socket dir>&port=5432`.
fn socket_url(socket_dir: &Path, database: &str) -> String {
    let mut url = reqwest::Url::parse(&format!("postgres://{SUPERUSER}@localhost/{database}"))
        .expect("a constant URL parses");
    url.query_pairs_mut()
        .append_pair("host", &socket_dir.to_string_lossy())
        .append_pair("port", &PORT.to_string());
    url.into()
}

/// The cluster's owner must be able to reach `<data-dir>/postgres`: add `o+x` to the data dir
/// (ours), and name any ancestor that still blocks it (not ours to change).
fn allow_traversal(data_dir: &Path, owner: &User) -> anyhow::Result<()> {
    let metadata = std::fs::metadata(data_dir)?;
    if !can_traverse(&metadata, owner) {
        let mode = metadata.permissions().mode();
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(mode | 0o001))?;
    }
    for ancestor in data_dir.ancestors().skip(1) {
        if !can_traverse(&std::fs::metadata(ancestor)?, owner) {
            bail!(
                "the `{}` user, which runs the built-in PostgreSQL, cannot enter {}: allow it (chmod o+x) or choose another --data-dir",
                owner.name,
                ancestor.display()
            );
        }
    }
    Ok(())
}

/// Whether `owner` may enter a directory (supplementary groups ignored).
fn can_traverse(metadata: &std::fs::Metadata, owner: &User) -> bool {
    let mode = metadata.mode();
    if metadata.uid() == owner.uid.as_raw() {
        mode & 0o100 != 0
    } else if metadata.gid() == owner.gid.as_raw() {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

fn chown(path: &Path, owner: &User) -> anyhow::Result<()> {
    std::os::unix::fs::lchown(path, Some(owner.uid.as_raw()), Some(owner.gid.as_raw()))
        .with_context(|| {
            format!(
                "cannot give {} to the `{}` user",
                path.display(),
                owner.name
            )
        })
}

/// Gives a cluster created by another user to `owner` (only walks it when the top differs).
fn chown_tree(root: &Path, owner: &User) -> anyhow::Result<()> {
    if std::fs::metadata(root)?.uid() == owner.uid.as_raw() {
        return Ok(());
    }
    tracing::info!(pgdata = %root.display(), user = %owner.name, "giving the cluster to its owner");
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        chown(&path, owner)?;
        if std::fs::symlink_metadata(&path)?.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(())
}

fn check(output: &Output, step: &str) -> anyhow::Result<()> {
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    bail!(
        "{step} failed ({}): {}{}",
        output.status,
        stderr.trim(),
        stdout.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_paths_keep_the_socket_in_the_cluster_dir() {
        let pgdata = Path::new("/srv/data/postgres");
        assert_eq!(socket_dir_for(pgdata), pgdata);
    }

    #[test]
    fn long_paths_fall_back_to_a_stable_short_dir() {
        let long = PathBuf::from(format!("/{}/postgres", "x".repeat(120)));
        let dir = socket_dir_for(&long);
        assert!(dir.starts_with("/tmp"));
        assert!(dir.as_os_str().len() + ".s.PGSQL.5432".len() < SOCKET_PATH_MAX);
        assert_eq!(dir, socket_dir_for(&long));
        assert_ne!(dir, socket_dir_for(&long.join("other")));
    }

    #[test]
    fn socket_url_is_understood_by_sqlx() {
        let url = socket_url(Path::new("/tmp/a b/pg"), DATABASE);
        let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
        assert_eq!(options.get_socket(), Some(&PathBuf::from("/tmp/a b/pg")));
        assert_eq!(options.get_database(), Some(DATABASE));
        assert_eq!(options.get_port(), PORT);
    }
}
