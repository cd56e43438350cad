//! The instance side: the login user, the chroot layout, and one real OpenSSH `sshd` per instance.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use std::os::unix::fs::chown;

use nix::unistd::{Gid, Pid, Uid, User};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The login user every simulated instance accepts.
pub const LOGIN_USER: &str = "eicsim";
const SSHD: &str = "/usr/sbin/sshd";
const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";
/// The SFTP server every `exec` request runs (sshd's `ForceCommand`), as `sudo -n sftp-server`
/// on a host: the chroot's copy is setuid root, so it has root's rights over the instance's files.
const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";
const LOGIN_SHELL: &str = "/bin/sh";
/// Programs a terminal session finds in the chroot besides the shell's builtins.
const SHELL_TOOLS: [&str; 1] = ["/bin/cat"];
/// What sshd runs for every session: an `exec` request (whatever its command) gets the SFTP
/// server, as the pool's `EIC_SFTP_COMMAND` does on a host; a `shell` request (a terminal) gets
/// an interactive login shell.
const SESSION_COMMAND: &str = "if [ -n \"$SSH_ORIGINAL_COMMAND\" ]; then exec /usr/lib/openssh/sftp-server; else exec /bin/sh -i; fi";
const SSHD_READY_TIMEOUT: Duration = Duration::from_secs(10);
const SSHD_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The directories the server manages inside an instance, owned by the login user.
const INSTANCE_DIRS: [&str; 5] = ["configs", "home", "workspace", "plugins", "opt/configs"];

#[derive(Debug, Clone)]
pub struct LoginUser {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

/// Creates the `eicsim` system user once (idempotent, safe when several simulators start at once)
/// and unlocks it: with `UsePAM no`, sshd refuses a locked (`!`) account.
pub async fn ensure_login_user() -> anyhow::Result<LoginUser> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(user) = User::from_name(LOGIN_USER).context("cannot read the user database")? {
            if user.shell != Path::new(LOGIN_SHELL) {
                run_admin(
                    Command::new("usermod").args(["-s", LOGIN_SHELL, LOGIN_USER]),
                    deadline,
                )
                .await?;
            }
            unlock(LOGIN_USER, deadline).await?;
            return Ok(LoginUser {
                name: user.name,
                uid: user.uid,
                gid: user.gid,
            });
        }
        // `-d /home`: the home directory inside the chroot, so sshd can chdir to it. `-s /bin/sh`:
        // sshd runs the forced sftp-server through the login shell (the copy inside the chroot).
        let status = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "-d",
                "/home",
                "-s",
                LOGIN_SHELL,
                LOGIN_USER,
            ])
            .stdout(Stdio::null())
            .status()
            .await
            .context("cannot run useradd (package passwd)")?;
        if !status.success() {
            // Another simulator may hold the passwd lock or have just created the user.
            if Instant::now() > deadline {
                bail!("useradd {LOGIN_USER} failed: {status}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn unlock(name: &str, deadline: Instant) -> anyhow::Result<()> {
    let shadow = std::fs::read_to_string("/etc/shadow").context("cannot read /etc/shadow")?;
    let locked = shadow
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(user, _)| *user == name)
        .is_some_and(|(_, rest)| rest.starts_with('!'));
    if locked {
        run_admin(Command::new("usermod").args(["-p", "*", name]), deadline).await?;
    }
    Ok(())
}

/// Runs a user-database command, retrying while another simulator holds the passwd lock.
async fn run_admin(command: &mut Command, deadline: Instant) -> anyhow::Result<()> {
    loop {
        // stdout carries only the ready line.
        let status = command
            .stdout(Stdio::null())
            .status()
            .await
            .with_context(|| format!("cannot run {command:?} (package passwd)"))?;
        if status.success() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{command:?} failed: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates `root` if needed and checks what sshd's `ChrootDirectory` demands of it and of every
/// parent: owned by root, not writable by group or others.
pub fn prepare_root(root: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(root)
        .with_context(|| format!("cannot create --root {}", root.display()))?;
    let root = root
        .canonicalize()
        .with_context(|| format!("cannot resolve --root {}", root.display()))?;
    let text = root.to_string_lossy();
    if text.contains(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '%' | '\\')) {
        bail!(
            "--root {text}: the path must not contain whitespace, quotes, '%' or '\\' (it goes into sshd_config)"
        );
    }
    for dir in root.ancestors() {
        let meta =
            std::fs::metadata(dir).with_context(|| format!("cannot stat {}", dir.display()))?;
        if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            bail!(
                "--root {}: {} is not owned by root or is group/other-writable; sshd's ChrootDirectory \
                 requires every component of the path to be root-owned and not writable by others \
                 (so /tmp cannot hold it; use e.g. /var/lib/eic-sim or a directory under target/)",
                root.display(),
                dir.display()
            );
        }
    }
    Ok(root)
}

/// `<root>/<instance>`: root-owned 0755 (a chroot), with the managed directories inside owned by
/// the login user.
pub fn prepare_instance_root(
    root: &Path,
    instance_id: &str,
    user: &LoginUser,
) -> anyhow::Result<PathBuf> {
    let dir = root.join(instance_id);
    std::fs::create_dir_all(dir.join("opt"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    for owned_by_root in [dir.as_path(), &dir.join("opt")] {
        chown(owned_by_root, Some(0), Some(0))
            .with_context(|| format!("cannot chown {}", owned_by_root.display()))?;
        std::fs::set_permissions(owned_by_root, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot chmod {}", owned_by_root.display()))?;
    }
    install_programs(&dir, user)?;
    for sub in INSTANCE_DIRS {
        let path = dir.join(sub);
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        chown(&path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
            .with_context(|| format!("cannot chown {}", path.display()))?;
    }
    Ok(dir)
}

/// Copies `/bin/sh`, sftp-server and the libraries they link into the chroot (root-owned), and
/// makes its `/dev/null` and `/etc/passwd`: an exec
/// request is then served like `sudo sftp-server` on a host. (`ForceCommand internal-sftp` would
/// need no files, but sshd serves it to `subsystem` requests only and refuses exec requests.)
fn install_programs(chroot: &Path, user: &LoginUser) -> anyhow::Result<()> {
    let programs = [LOGIN_SHELL, SFTP_SERVER].into_iter().chain(SHELL_TOOLS);
    let mut files: Vec<PathBuf> = programs.clone().map(PathBuf::from).collect();
    for program in programs {
        let output = std::process::Command::new("ldd")
            .arg(program)
            .output()
            .context("cannot run ldd (package libc-bin)")?;
        let listing = String::from_utf8_lossy(&output.stdout);
        // `libc.so.6 => /lib/…/libc.so.6 (0x…)` and `/lib64/ld-linux-x86-64.so.2 (0x…)`
        for line in listing.lines() {
            let path = match line.split_once("=>") {
                Some((_, target)) => target.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(path) = path.filter(|p| p.starts_with('/')) {
                files.push(PathBuf::from(path));
            }
        }
    }
    for file in files {
        let target = chroot.join(file.strip_prefix("/").unwrap_or(&file));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        // Copies, not links: nothing done inside a chroot can reach the host's files.
        std::fs::copy(&file, &target)
            .with_context(|| format!("cannot copy {} into {}", file.display(), chroot.display()))?;
        let mode = if file == Path::new(SFTP_SERVER) {
            0o4755
        } else {
            0o755
        };
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
    }
    // sftp-server looks its user up by uid.
    let etc = chroot.join("etc");
    std::fs::create_dir_all(&etc).with_context(|| format!("cannot create {}", etc.display()))?;
    let (uid, gid) = (user.uid, user.gid);
    let passwd = format!(
        "root:x:0:0:root:/root:/bin/sh\n{}:x:{uid}:{gid}::/home:{LOGIN_SHELL}\n",
        user.name
    );
    std::fs::write(etc.join("passwd"), passwd).context("cannot write the chroot's /etc/passwd")?;
    let group = format!("root:x:0:\n{}:x:{gid}:\n", user.name);
    std::fs::write(etc.join("group"), group).context("cannot write the chroot's /etc/group")?;
    // sftp-server refuses to start without /dev/null; an interactive shell opens /dev/tty for
    // job control (sshd itself opens the PTY before it enters the chroot).
    let dev = chroot.join("dev");
    std::fs::create_dir_all(&dev).with_context(|| format!("cannot create {}", dev.display()))?;
    make_device(&dev.join("null"), "1", "3")?;
    make_device(&dev.join("tty"), "5", "0")
}

/// A character device node, mode 0666, unless it exists.
fn make_device(path: &Path, major: &str, minor: &str) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let status = std::process::Command::new("mknod")
        .args(["-m", "666"])
        .arg(path)
        .args(["c", major, minor])
        .status()
        .context("cannot run mknod (package coreutils)")?;
    if !status.success() {
        bail!(
            "mknod {} c {major} {minor} failed: {status}",
            path.display()
        );
    }
    Ok(())
}

/// Writes the `AuthorizedKeysCommand` wrapper into `dir` (root-owned, 0755, as sshd requires of the
/// command and its parents): it runs this binary's `authorized-keys` subcommand.
pub fn write_authorized_keys_command(dir: &Path, sim_url: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .context("cannot locate the eic-sim binary")?;
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let script = format!(
        "#!/bin/sh\n# sshd AuthorizedKeysCommand written by eic-sim: prints the keys pushed for $1/$2.\nexec {} authorized-keys --url {} \"$@\"\n",
        quote(&exe.to_string_lossy()),
        quote(sim_url)
    );
    let path = dir.join("authorized-keys");
    std::fs::write(&path, script).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// One instance's sshd: its config, its port (kept across restarts) and the running process.
#[derive(Debug)]
pub struct Sshd {
    instance_id: String,
    port: u16,
    config: PathBuf,
    child: Option<Child>,
}

pub struct SshdSpec<'a> {
    pub instance_id: &'a str,
    pub instance_root: &'a Path,
    /// The simulator's private directory (host key, config, pid file).
    pub private_dir: &'a Path,
    pub authorized_keys_command: &'a Path,
    pub user: &'a LoginUser,
}

impl Sshd {
    /// Generates a host key and a config on a free loopback port.
    pub async fn create(spec: SshdSpec<'_>) -> anyhow::Result<Sshd> {
        let id = spec.instance_id;
        let host_key = spec.private_dir.join(format!("{id}_ssh_host_ed25519_key"));
        let status = Command::new(SSH_KEYGEN)
            .args(["-q", "-t", "ed25519", "-N", "", "-C", id, "-f"])
            .arg(&host_key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .await
            .with_context(|| format!("cannot run {SSH_KEYGEN} (package openssh-client)"))?;
        if !status.success() {
            bail!("ssh-keygen for {id}'s host key failed: {status}");
        }
        let port = free_port()?;
        let config = spec.private_dir.join(format!("{id}_sshd_config"));
        let text = format!(
            "# Generated by eic-sim for instance {id}.\n\
             Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {host_key}\n\
             PidFile {pid}\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             PermitRootLogin no\n\
             AllowUsers {user}\n\
             AuthorizedKeysFile none\n\
             AuthorizedKeysCommand {command} {id} %u\n\
             AuthorizedKeysCommandUser {user}\n\
             ChrootDirectory {chroot}\n\
             ForceCommand {SESSION_COMMAND}\n\
             Subsystem sftp {SFTP_SERVER}\n\
             AllowTcpForwarding no\n\
             AllowAgentForwarding no\n\
             X11Forwarding no\n\
             PermitTunnel no\n\
             PermitTTY yes\n\
             MaxSessions 10\n\
             MaxStartups 100\n\
             UseDNS no\n\
             PrintMotd no\n\
             LogLevel ERROR\n",
            host_key = host_key.display(),
            pid = spec.private_dir.join(format!("{id}_sshd.pid")).display(),
            user = spec.user.name,
            command = spec.authorized_keys_command.display(),
            chroot = spec.instance_root.display(),
        );
        std::fs::write(&config, text)
            .with_context(|| format!("cannot write {}", config.display()))?;
        Ok(Sshd {
            instance_id: id.to_owned(),
            port,
            config,
            child: None,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Starts sshd and waits until its port accepts connections.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let id = self.instance_id.clone();
        let mut child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {SSHD} (package openssh-server)"))?;
        if let Some(stderr) = child.stderr.take() {
            let id = id.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::warn!(instance_id = id, "sshd: {line}");
                }
            });
        }
        let deadline = Instant::now() + SSHD_READY_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("sshd for {id} exited during startup ({status}); its stderr is logged above");
            }
            if probe(self.port).await {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "sshd for {id} did not listen on port {} within {SSHD_READY_TIMEOUT:?}",
                    self.port
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.child = Some(child);
        tracing::info!(instance_id = id, port = self.port, "sshd running");
        Ok(())
    }

    /// SIGTERM, then SIGKILL if it lingers. Sessions already forked live on until their tunnel is
    /// dropped (the caller drops them).
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        if tokio::time::timeout(SSHD_STOP_TIMEOUT, child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
        tracing::info!(instance_id = self.instance_id, "sshd stopped");
    }
}

/// Whether sshd answers with its banner. The probe sends an identification line of its own so
/// that sshd does not log an error for it.
async fn probe(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"SSH-2.0-eic-sim-probe\r\n").await?;
        let mut banner = [0u8; 8];
        stream.read_exact(&mut banner).await?;
        Ok::<_, std::io::Error>(banner.starts_with(b"SSH-2.0-"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Ok(true))
    )
}

fn free_port() -> anyhow::Result<u16> {
    // The port is released before sshd binds it; sshd's start fails clearly if it was taken.
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", 0)).context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}
