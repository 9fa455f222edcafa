//! A private PostgreSQL cluster the binary starts itself when no `DATABASE_URL` is given.
//!
//! Owns the cluster's life cycle under one directory: finding the machine's PostgreSQL binaries,
//! `initdb` on first use, starting the server on a Unix socket inside that directory, recovering
//! from a crash (stale `postmaster.pid`), and stopping it when the last guild-sync process that
//! uses it ends. It must not know anything about guild-sync's schema.
//!
//! Layout of the directory:
//! - `pgdata/` — the cluster (owned by the account the server runs as, mode 0700)
//! - `run/` — the server's Unix socket and its log (owned by the same account)
//! - `cluster.lock` — held exclusively while the server is being started or stopped
//! - `clients.lock` — held shared by every process using the server; whoever can take it
//!   exclusively at exit is the last user and stops the server.
//!
//! PostgreSQL refuses to run as root, so when we are root the server runs as an unprivileged
//! account (`postgres` where it exists); root can still reach the socket. That account cannot
//! enter a private home (`/root` is 0700), where the README's first command is typically run:
//! then the cluster moves to [`RELOCATION_BASE`]`/<name>` (owned by that account), the move is
//! printed, and a pointer file ([`POINTER_FILE`]) in the data directory sends every later run
//! to the same place.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, anyhow, bail};
use sqlx::postgres::PgConnectOptions;

/// The superuser `initdb` creates; connections come over the private socket with trust auth.
pub const SUPERUSER: &str = "guild_sync";

/// Port number only names the socket file (`.s.PGSQL.5432`); TCP is disabled.
const PORT: u16 = 5432;

/// Longest Unix socket path Linux accepts (`sun_path` is 108 bytes including the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Seconds `pg_ctl` waits for the server to start or stop before giving up.
const PG_CTL_TIMEOUT_SECS: &str = "60";

/// Accounts tried, in order, to run the server when we are root.
const UNPRIVILEGED_ACCOUNTS: &[&str] = &["postgres", "nobody"];

/// Where a cluster goes when we are root and the data directory is out of the server account's
/// reach.
pub const RELOCATION_BASE: &str = "/var/lib/guild-sync";

/// The file in a data directory naming the directory its cluster was moved to.
pub const POINTER_FILE: &str = "cluster-location";

/// How durable the cluster must be: the product keeps fsync on; the test harness trades
/// crash-safety for speed because its databases are thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Durable,
    Throwaway,
}

/// The account the server processes run as.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
}

/// A running private cluster. Dropping it releases this process's claim and stops the server
/// if no other process still uses it.
#[derive(Debug)]
pub struct LocalCluster {
    root: PathBuf,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    /// The server binaries, found on first use: a running server needs none of them, and
    /// looking (`pg_config --bindir`) cost a command several milliseconds of start-up.
    bin_dir: std::sync::OnceLock<PathBuf>,
    run_as: Option<RunAs>,
    /// Shared lock on `clients.lock`, held for as long as this value lives.
    clients_lock: Option<File>,
    /// Whether dropping this value may stop the server (false for the test harness, whose
    /// cluster outlives each test process and is reused by the next one).
    stop_on_drop: bool,
}

impl LocalCluster {
    /// Start (or reuse) the cluster under `root`, creating it on first use; moved under
    /// [`RELOCATION_BASE`] when the server account cannot reach `root`.
    pub fn start(root: &Path, durability: Durability) -> Result<Self> {
        Self::start_relocatable(root, durability, Path::new(RELOCATION_BASE))
    }

    /// [`LocalCluster::start`], moving an unreachable cluster under `relocation_base`.
    pub fn start_relocatable(
        root: &Path,
        durability: Durability,
        relocation_base: &Path,
    ) -> Result<Self> {
        fs::create_dir_all(root)
            .with_context(|| format!("cannot create the data directory {}", root.display()))?;
        let root = root
            .canonicalize()
            .with_context(|| format!("cannot resolve the data directory {}", root.display()))?;
        let run_as = unprivileged_account()?;
        let root = match run_as {
            Some(account) => reachable_root(&root, account, relocation_base)?,
            None => root,
        };
        let pgdata = root.join("pgdata");
        let socket_dir = socket_dir_for(&root)?;

        let cluster_lock = lock_file(&root.join("cluster.lock"))?;
        cluster_lock
            .lock()
            .context("cannot lock the cluster directory")?;
        let clients_lock = lock_file(&root.join("clients.lock"))?;

        let mut cluster = LocalCluster {
            root,
            pgdata,
            socket_dir,
            bin_dir: std::sync::OnceLock::new(),
            run_as,
            clients_lock: None,
            stop_on_drop: true,
        };
        cluster.prepare_dirs()?;
        if !cluster.pgdata.join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        if !cluster.is_running()? {
            cluster.remove_stale_lock_files()?;
            cluster.start_server(durability)?;
        }
        clients_lock
            .lock_shared()
            .context("cannot register as a user of the cluster")?;
        drop(cluster_lock);
        cluster.clients_lock = Some(clients_lock);
        Ok(cluster)
    }

    /// Keep the server running after this value is dropped (the test harness's choice).
    pub fn keep_running(mut self) -> Self {
        self.stop_on_drop = false;
        self
    }

    /// Connection options for `database` over the private socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.socket_dir)
            .port(PORT)
            .username(SUPERUSER)
            .database(database)
    }

    /// A `DATABASE_URL`-style URL for `database` (what a spawned child process needs).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@localhost:{PORT}/{database}?host={}",
            self.socket_dir.display()
        )
    }

    /// The directory holding the cluster.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stop the server now, whoever else uses it (tests of the life cycle need this).
    pub fn stop(&self) -> Result<()> {
        self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", PG_CTL_TIMEOUT_SECS])
            .map(|_| ())
    }

    /// Whether a server is running on this cluster's data directory.
    pub fn is_running(&self) -> Result<bool> {
        // What `pg_ctl status` checks (a `postmaster.pid` whose process lives), read directly:
        // spawning pg_ctl was a few milliseconds of every command's start-up (issue 21), and
        // the process must also be a PostgreSQL server, not a program that reused the pid.
        Ok(read_pid_file(&self.pgdata.join("postmaster.pid")).is_some_and(is_postgres_process))
    }

    /// The server binaries' directory ([`find_bin_dir`], once).
    fn bin_dir(&self) -> Result<&Path> {
        if let Some(dir) = self.bin_dir.get() {
            return Ok(dir);
        }
        let found = find_bin_dir()?;
        Ok(self.bin_dir.get_or_init(|| found))
    }

    /// The postmaster's pid, read from `postmaster.pid`. Only the life-cycle tests need it.
    #[cfg(feature = "test-support")]
    pub fn postmaster_pid(&self) -> Option<i32> {
        read_pid_file(&self.pgdata.join("postmaster.pid"))
    }

    fn prepare_dirs(&self) -> Result<()> {
        // The root is only traversed by the server account; the private parts are its own.
        if self.run_as.is_some() {
            let mut perms = fs::metadata(&self.root)?.permissions();
            if perms.mode() & 0o001 == 0 {
                perms.set_mode(perms.mode() | 0o711);
                fs::set_permissions(&self.root, perms)?;
            }
        }
        for dir in [&self.pgdata, &self.socket_dir] {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
            if let Some(account) = self.run_as {
                nix::unistd::chown(dir.as_path(), Some(account.uid), Some(account.gid))
                    .with_context(|| {
                        format!("cannot hand {} to the server account", dir.display())
                    })?;
            }
        }
        Ok(())
    }

    fn initdb(&self) -> Result<()> {
        tracing::info!(pgdata = %self.pgdata.display(), "creating a private PostgreSQL cluster");
        let mut last_err = None;
        // C.UTF-8 makes lower() work on accented names; fall back to C where the locale is absent.
        for locale in ["C.UTF-8", "C"] {
            let out = self
                .command("initdb")?
                .arg("-D")
                .arg(&self.pgdata)
                .args(["-U", SUPERUSER, "--auth=trust", "--encoding=UTF8"])
                .arg(format!("--locale={locale}"))
                .output()
                .context("cannot run initdb")?;
            if out.status.success() {
                return Ok(());
            }
            last_err = Some(describe_failure("initdb", &out));
            // initdb leaves a half-made directory behind on failure; clear it for the retry.
            clear_dir(&self.pgdata)?;
        }
        Err(last_err.unwrap_or_else(|| anyhow!("initdb failed")))
    }

    fn start_server(&self, durability: Durability) -> Result<()> {
        let mut options = format!(
            "-c listen_addresses='' -c port={PORT} -c unix_socket_directories='{}' -c max_connections=200",
            self.socket_dir.display()
        );
        if durability == Durability::Throwaway {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let log = self.socket_dir.join("postgres.log");
        let log = log.to_string_lossy();
        let result = self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            PG_CTL_TIMEOUT_SECS,
            "-l",
            &log,
            "-o",
            &options,
        ]);
        result.with_context(|| format!("the PostgreSQL server did not start; its log is {log}"))?;
        Ok(())
    }

    /// A crash (power loss, `kill -9`) leaves `postmaster.pid` and the socket lock behind. The
    /// server itself ignores them only when their pid is dead; a reused pid (another program now
    /// holds it) would block every later start, so we check what the pid really is.
    fn remove_stale_lock_files(&self) -> Result<()> {
        for file in [
            self.pgdata.join("postmaster.pid"),
            self.socket_dir.join(format!(".s.PGSQL.{PORT}.lock")),
        ] {
            let Some(pid) = read_pid_file(&file) else {
                continue;
            };
            if !is_postgres_process(pid) {
                tracing::warn!(file = %file.display(), pid, "removing a stale PostgreSQL lock file left by a crash");
                fs::remove_file(&file)
                    .with_context(|| format!("cannot remove the stale {}", file.display()))?;
            }
        }
        Ok(())
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<Output> {
        let out = self.pg_ctl_output(args)?;
        if !out.status.success() {
            return Err(describe_failure("pg_ctl", &out));
        }
        Ok(out)
    }

    fn pg_ctl_output(&self, args: &[&str]) -> Result<Output> {
        self.command("pg_ctl")?
            .arg("-D")
            .arg(&self.pgdata)
            .args(args)
            .output()
            .context("cannot run pg_ctl")
    }

    fn command(&self, program: &str) -> Result<Command> {
        let mut cmd = Command::new(self.bin_dir()?.join(program));
        // The server account may not be able to read the caller's working directory.
        cmd.current_dir("/");
        cmd.env_remove("PGDATA").env("LC_ALL", "C.UTF-8");
        if let Some(account) = self.run_as {
            // std drops root's supplementary groups itself when it changes the uid.
            cmd.uid(account.uid.as_raw()).gid(account.gid.as_raw());
        }
        Ok(cmd)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let Some(clients_lock) = self.clients_lock.take() else {
            return;
        };
        if !self.stop_on_drop {
            return;
        }
        // Serialise with starters so a process starting right now is not stranded.
        let Ok(cluster_lock) = lock_file(&self.root.join("cluster.lock")) else {
            return;
        };
        if cluster_lock.lock().is_err() {
            return;
        }
        drop(clients_lock);
        let Ok(probe) = lock_file(&self.root.join("clients.lock")) else {
            return;
        };
        if probe.try_lock().is_ok()
            && let Err(err) = self.stop()
        {
            tracing::warn!(error = %err, "could not stop the private PostgreSQL server");
        }
    }
}

/// Locate the PostgreSQL server binaries: `pg_config --bindir`, then `PATH`, then
/// `/usr/lib/postgresql/*/bin` (newest version first).
pub fn find_bin_dir() -> Result<PathBuf> {
    find_bin_dir_in(
        OsStr::new("pg_config"),
        std::env::var_os("PATH"),
        Path::new("/usr/lib/postgresql"),
    )
}

fn find_bin_dir_in(
    pg_config: &OsStr,
    path: Option<std::ffi::OsString>,
    debian_root: &Path,
) -> Result<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(out) = Command::new(pg_config).arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&dir) {
            return Ok(dir);
        }
    }
    if let Some(path) = path
        && let Some(dir) = std::env::split_paths(&path).find(|d| has_server(d))
    {
        return Ok(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(debian_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Ok(dir);
    }
    bail!(
        "no PostgreSQL server binaries found (looked at `pg_config --bindir`, PATH and \
         /usr/lib/postgresql/*/bin): install PostgreSQL 14 or newer (Debian/Ubuntu: \
         `apt-get install postgresql`), or set DATABASE_URL to an existing server"
    )
}

/// When we are root, the account the server runs as; `None` when we are not root.
fn unprivileged_account() -> Result<Option<RunAs>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    for name in UNPRIVILEGED_ACCOUNTS {
        if let Ok(Some(user)) = nix::unistd::User::from_name(name) {
            return Ok(Some(RunAs {
                uid: user.uid,
                gid: user.gid,
            }));
        }
    }
    bail!(
        "PostgreSQL refuses to run as root and no unprivileged account ({}) exists: create one \
         (`useradd --system postgres`), run guild-sync as a normal user, or set DATABASE_URL",
        UNPRIVILEGED_ACCOUNTS.join(", ")
    )
}

/// The server account must be able to walk down to the data directory; a private home
/// (`/root` is 0700) would make initdb fail with an obscure error, so say so plainly.
fn check_reachable(root: &Path, account: RunAs) -> Result<()> {
    for dir in root.ancestors().skip(1) {
        let meta =
            fs::metadata(dir).with_context(|| format!("cannot inspect {}", dir.display()))?;
        let mode = meta.mode();
        let searchable = mode & 0o001 != 0
            || (meta.uid() == account.uid.as_raw() && mode & 0o100 != 0)
            || (meta.gid() == account.gid.as_raw() && mode & 0o010 != 0);
        if !searchable {
            bail!(
                "the PostgreSQL server runs as an unprivileged account that cannot enter {} \
                 (mode {:o}), so it cannot use the data directory {}: set GUILD_SYNC_DATA_DIR to \
                 a directory outside it (for example /var/lib/guild-sync), or set DATABASE_URL",
                dir.display(),
                mode & 0o777,
                root.display()
            );
        }
    }
    Ok(())
}

/// The directory the cluster lives in when the server `account` must reach it: `root` itself,
/// the directory its pointer file names, or — when `root` is out of reach — a new directory
/// under `base` owned by the account, recorded in the pointer file and printed.
fn reachable_root(root: &Path, account: RunAs, base: &Path) -> Result<PathBuf> {
    let pointer = root.join(POINTER_FILE);
    match fs::read_to_string(&pointer) {
        Ok(text) => {
            let target = PathBuf::from(text.trim());
            if !target.is_absolute() {
                bail!(
                    "{} should name the directory of the cluster, but holds {:?}",
                    pointer.display(),
                    text.trim()
                );
            }
            check_reachable(&target, account)?;
            return Ok(target);
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(err).with_context(|| format!("cannot read {}", pointer.display()));
        }
    }
    let Err(unreachable) = check_reachable(root, account) else {
        return Ok(root.to_path_buf());
    };
    let target = base.join(relocated_name(root));
    fs::create_dir_all(base).with_context(|| format!("cannot create {}", base.display()))?;
    // The base only has to be traversable; what is inside belongs to the server account.
    let mut perms = fs::metadata(base)?.permissions();
    if perms.mode() & 0o001 == 0 {
        perms.set_mode(perms.mode() | 0o711);
        fs::set_permissions(base, perms)?;
    }
    fs::create_dir_all(&target).with_context(|| format!("cannot create {}", target.display()))?;
    nix::unistd::chown(target.as_path(), Some(account.uid), Some(account.gid))
        .with_context(|| format!("cannot hand {} to the server account", target.display()))?;
    fs::set_permissions(&target, fs::Permissions::from_mode(0o700))?;
    check_reachable(&target, account).with_context(|| {
        format!("moving the cluster out of reach ({unreachable:#}) did not help either")
    })?;
    fs::write(&pointer, format!("{}\n", target.display()))
        .with_context(|| format!("cannot write {}", pointer.display()))?;
    // Printed, not logged: the officer must learn where the data went whatever the log level.
    eprintln!(
        "guild-sync: the PostgreSQL server account cannot enter {}, so the database lives in {} \
         (remembered in {})",
        root.display(),
        target.display(),
        pointer.display()
    );
    Ok(target)
}

/// `<directory name>-<8 hex of the path's hash>`: readable, and distinct for two data
/// directories with the same name. For the default `.guild-sync`, the name of the directory
/// holding it.
fn relocated_name(root: &Path) -> String {
    use sha2::{Digest, Sha256};
    let named = match root.file_name().and_then(OsStr::to_str) {
        Some(".guild-sync") | None => root.parent().and_then(|p| p.file_name()),
        Some(_) => root.file_name(),
    };
    let readable: String = named
        .and_then(OsStr::to_str)
        .unwrap_or("guild-sync")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(40)
        .collect();
    let readable = if readable.is_empty() {
        "guild-sync".to_string()
    } else {
        readable
    };
    let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
    format!("{readable}-{}", &hex::encode(digest)[..8])
}

/// The socket lives in `root/run` unless that path is too long for a Unix socket, in which case
/// a short directory under /tmp named after the root is used instead.
fn socket_dir_for(root: &Path) -> Result<PathBuf> {
    let preferred = root.join("run");
    let socket_name_len = format!("/.s.PGSQL.{PORT}.lock").len();
    if preferred.as_os_str().len() + socket_name_len <= MAX_SOCKET_PATH {
        return Ok(preferred);
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
    Ok(std::env::temp_dir().join(format!("guild-sync-{}", &hex::encode(digest)[..16])))
}

fn lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

fn read_pid_file(path: &Path) -> Option<i32> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Whether `pid` is a live PostgreSQL server process (not some other program that reused it).
fn is_postgres_process(pid: i32) -> bool {
    let Ok(comm) = fs::read_to_string(format!("/proc/{pid}/comm")) else {
        return false;
    };
    matches!(comm.trim(), "postgres" | "postmaster")
}

fn clear_dir(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

fn describe_failure(program: impl AsRef<OsStr>, out: &Output) -> anyhow::Error {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let detail = if stderr.trim().is_empty() {
        stdout.trim().to_owned()
    } else {
        stderr.trim().to_owned()
    };
    anyhow!(
        "{} failed ({}): {}",
        program.as_ref().to_string_lossy(),
        out.status,
        detail
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_binaries_anywhere_is_one_clear_message() {
        let empty = std::env::temp_dir().join("gs-no-postgres-here");
        let err = find_bin_dir_in(
            OsStr::new("/nonexistent/pg_config"),
            Some("/nonexistent".into()),
            &empty,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("install PostgreSQL"), "{err}");
        assert!(err.contains("DATABASE_URL"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }

    #[test]
    fn the_newest_debian_version_is_preferred() {
        let root = std::env::temp_dir().join(format!("gs-debian-{}", std::process::id()));
        for version in ["13", "15", "9"] {
            let bin = root.join(version).join("bin");
            fs::create_dir_all(&bin).unwrap();
            fs::write(bin.join("initdb"), "").unwrap();
            fs::write(bin.join("pg_ctl"), "").unwrap();
        }
        let found = find_bin_dir_in(OsStr::new("/nonexistent/pg_config"), None, &root).unwrap();
        assert_eq!(found, root.join("15/bin"));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_relocated_cluster_is_named_after_its_directory_and_path() {
        let a = relocated_name(Path::new("/root/guild/.guild-sync"));
        let b = relocated_name(Path::new("/root/other/guild/.guild-sync"));
        assert!(
            a.starts_with("guild-") && b.starts_with("guild-"),
            "{a} {b}"
        );
        assert_ne!(a, b);
        assert!(relocated_name(Path::new("/root/my data!")).starts_with("mydata-"));
        assert!(relocated_name(Path::new("/")).starts_with("guild-sync-"));
    }

    #[test]
    fn long_data_directories_get_a_short_socket_directory() {
        let short = socket_dir_for(Path::new("/srv/gs")).unwrap();
        assert_eq!(short, Path::new("/srv/gs/run"));
        let long = Path::new("/srv").join("x".repeat(120));
        let dir = socket_dir_for(&long).unwrap();
        assert!(
            dir.as_os_str().len() + 20 < MAX_SOCKET_PATH,
            "{}",
            dir.display()
        );
    }
}
