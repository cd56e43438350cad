//! [`SimProcess`]: the `eic-sim` binary as a child process of a test or benchmark.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;
use thiserror::Error;

use crate::control::SimControl;
use crate::wire::{SimInfo, SimInstance};

/// How long the simulator may take to start its sshds and print the ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long it may take to stop its sshds after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Error)]
pub enum SimProcessError {
    #[error(
        "eic-sim binary not found at {0}: tests and benchmarks run it from their own target \
         directory without building it; build it first with `cargo build --workspace --all-targets` \
         (scripts/test does), or set EIC_SIM_BIN"
    )]
    BinaryNotFound(PathBuf),
    #[error("cannot locate the current executable")]
    CurrentExe(#[source] std::io::Error),
    #[error("cannot create the simulator's root directory under {0}")]
    Root(PathBuf, #[source] std::io::Error),
    #[error("cannot start eic-sim")]
    Spawn(#[source] std::io::Error),
    #[error("eic-sim exited before it was ready ({0}); see its stderr")]
    Exited(String),
    #[error("eic-sim printed no ready line within {0:?}")]
    NotReady(Duration),
    #[error("eic-sim printed an unreadable ready line: {line}")]
    BadReadyLine {
        line: String,
        #[source]
        source: serde_json::Error,
    },
}

/// `SimProcess::spawn(..).expect(..)` in a test prints this: the message and its causes, which
/// say what to do, rather than the variant's fields.
impl std::fmt::Debug for SimProcessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// A running simulator; SIGTERM on `Drop` (it then stops its sshds and removes its temp files).
#[derive(Debug)]
pub struct SimProcess {
    child: Child,
    info: SimInfo,
    /// The default instance root, removed after the simulator stopped.
    _root: Option<TempDir>,
}

impl SimProcess {
    /// Starts `eic-sim ARGS` (the binary next to the current executable's `target/<profile>/`
    /// directory, or `$EIC_SIM_BIN`) and waits for its ready line. Without `--root` in `args`, a
    /// fresh root under `target/<profile>/eic-sim-roots/` is used and removed on drop (`/tmp`
    /// cannot hold a chroot: it is world-writable; a checkout there uses `FALLBACK_ROOTS`,
    /// `/var/lib/eic-sim`).
    pub fn spawn(args: &[&str]) -> Result<SimProcess, SimProcessError> {
        let binary = sim_binary()?;
        let mut command = Command::new(&binary);
        command.args(args);
        let root = if args.contains(&"--root") {
            None
        } else {
            let profile_dir = binary.parent().unwrap_or(Path::new("."));
            let root = default_root(profile_dir)?;
            command.arg("--root").arg(root.path());
            Some(root)
        };
        command
            .arg("--exit-on-stdin-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().map_err(SimProcessError::Spawn)?;
        let stdout = child.stdout.take().expect("stdout is piped");

        let (line_tx, line_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = line_tx.send(lines.next());
            // Keep draining so that the simulator never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match line_rx.recv_timeout(READY_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            Ok(_) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child
                    .wait()
                    .map_or_else(|e| e.to_string(), |s| s.to_string());
                return Err(SimProcessError::Exited(status));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SimProcessError::NotReady(READY_TIMEOUT));
            }
        };
        let info = match serde_json::from_str(&line) {
            Ok(info) => info,
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SimProcessError::BadReadyLine { line, source });
            }
        };
        Ok(SimProcess {
            child,
            info,
            _root: root,
        })
    }

    /// The parsed ready line.
    pub fn info(&self) -> &SimInfo {
        &self.info
    }

    /// One instance of the ready line. Panics on an unknown id (a test bug).
    pub fn instance(&self, instance_id: &str) -> &SimInstance {
        self.info
            .instances
            .get(instance_id)
            .unwrap_or_else(|| panic!("the simulator has no instance {instance_id}"))
    }

    /// A client for the control API.
    pub fn control(&self) -> SimControl {
        SimControl::new(&self.info.aws_endpoint_url)
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX));
        if kill(pid, Signal::SIGTERM).is_ok() {
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sim_binary() -> Result<PathBuf, SimProcessError> {
    if let Some(path) = std::env::var_os("EIC_SIM_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(SimProcessError::BinaryNotFound(path))
        };
    }
    let exe = std::env::current_exe().map_err(SimProcessError::CurrentExe)?;
    let mut dir = exe.parent().unwrap_or(Path::new(".")).to_path_buf();
    // Test and bench executables live in target/<profile>/deps.
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.pop();
    }
    let binary = dir.join("eic-sim");
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(SimProcessError::BinaryNotFound(binary))
    }
}

/// Where instance roots go when a checkout sits under a directory sshd refuses (e.g. `/tmp`).
pub const FALLBACK_ROOTS: &str = "/var/lib/eic-sim";

/// Whether sshd accepts `dir` as a parent of a `ChrootDirectory`: every component root-owned and
/// not group/other-writable.
pub fn chroot_safe(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    dir.canonicalize().is_ok_and(|dir| {
        dir.ancestors().all(|d| {
            std::fs::metadata(d).is_ok_and(|meta| meta.uid() == 0 && meta.mode() & 0o022 == 0)
        })
    })
}

fn default_root(profile_dir: &Path) -> Result<TempDir, SimProcessError> {
    use std::os::unix::fs::PermissionsExt;
    let parent = if chroot_safe(profile_dir) {
        profile_dir.join("eic-sim-roots")
    } else {
        PathBuf::from(FALLBACK_ROOTS)
    };
    let fail = |e| SimProcessError::Root(parent.clone(), e);
    std::fs::create_dir_all(&parent).map_err(fail)?;
    let root = tempfile::Builder::new()
        .prefix("sim-")
        .tempdir_in(&parent)
        .map_err(fail)?;
    // sshd's ChrootDirectory and AuthorizedKeysCommand need root-owned, not group/other-writable
    // parents; the login user must be able to traverse them.
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).map_err(fail)?;
    Ok(root)
}
