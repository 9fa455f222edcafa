//! The private cluster's life cycle, on the real PostgreSQL binaries of this machine: first
//! start, reuse, a second start, and recovery from a crash that left a stale pid file.
//!
//! Every test runs under [`CLUSTER_TEST_TIMEOUT`]. The cluster's own start and stop block (they
//! wait for `pg_ctl`, which gives up after its own timeout); the binaries run as
//! `tokio::process` children, so a hung command fails the test and is killed with it.

mod common;

use std::time::Duration;

use guild_sync::pg_cluster::{Durability, LocalCluster};
use sqlx::{Connection, PgConnection};
use tokio::process::Command;

use common::within;

/// initdb, starts and stops of real clusters, and (for the binary) migrations on top.
const CLUSTER_TEST_TIMEOUT: Duration = Duration::from_secs(180);

async fn select_one(cluster: &LocalCluster) -> i32 {
    let mut conn = PgConnection::connect_with(&cluster.connect_options("postgres"))
        .await
        .expect("connect over the private socket");
    sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

fn temp_dir() -> tempfile::TempDir {
    // Under /tmp: short socket paths, and reachable by the server account when we are root.
    tempfile::Builder::new()
        .prefix("gs-pg-")
        .tempdir_in("/tmp")
        .unwrap()
}

#[tokio::test]
async fn starts_reuses_and_stops_when_the_last_user_leaves() {
    within(CLUSTER_TEST_TIMEOUT, async {
        let dir = temp_dir();
        let first = LocalCluster::start(dir.path(), Durability::Throwaway).unwrap();
        assert_eq!(select_one(&first).await, 1);
        let pid = first.postmaster_pid().expect("postmaster.pid exists");

        // A second user (another guild-sync process) reuses the same server.
        let second = LocalCluster::start(dir.path(), Durability::Throwaway).unwrap();
        assert_eq!(second.postmaster_pid(), Some(pid));
        drop(first);
        assert!(
            second.is_running().unwrap(),
            "another user still holds the cluster"
        );
        assert_eq!(select_one(&second).await, 1);
        drop(second);

        // The last user stopped it; the next start reuses the data directory.
        let again = LocalCluster::start(dir.path(), Durability::Throwaway).unwrap();
        assert_ne!(again.postmaster_pid(), Some(pid));
        assert_eq!(select_one(&again).await, 1);
        drop(again);
    })
    .await;
}

#[tokio::test]
async fn data_survives_a_restart() {
    within(CLUSTER_TEST_TIMEOUT, async {
        let dir = temp_dir();
        let cluster = LocalCluster::start(dir.path(), Durability::Durable).unwrap();
        let mut conn = PgConnection::connect_with(&cluster.connect_options("postgres"))
            .await
            .unwrap();
        sqlx::raw_sql("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        drop(cluster);

        let cluster = LocalCluster::start(dir.path(), Durability::Durable).unwrap();
        let mut conn = PgConnection::connect_with(&cluster.connect_options("postgres"))
            .await
            .unwrap();
        let v: i32 = sqlx::query_scalar("SELECT v FROM kept")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(v, 42);
    })
    .await;
}

#[tokio::test]
async fn recovers_from_a_crash_and_a_stale_pid_file() {
    within(CLUSTER_TEST_TIMEOUT, async {
        let dir = temp_dir();
        let cluster = LocalCluster::start(dir.path(), Durability::Throwaway).unwrap();
        let pid = cluster.postmaster_pid().unwrap();
        // A crash: the postmaster dies without cleaning up.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        while cluster.is_running().unwrap_or(false)
            && std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::mem::forget(cluster); // its server is gone; do not try to stop it

        // Worse: the dead server's pid now belongs to some other live program (here: this test).
        let pid_file = dir.path().join("pgdata/postmaster.pid");
        let stale = std::fs::read_to_string(&pid_file).unwrap();
        let rest = stale.split_once('\n').map(|(_, r)| r).unwrap_or("");
        std::fs::write(&pid_file, format!("{}\n{rest}", std::process::id())).unwrap();

        let restarted = LocalCluster::start(dir.path(), Durability::Throwaway).unwrap();
        assert_eq!(select_one(&restarted).await, 1);
    })
    .await;
}

/// `guild-sync migrate` with its cluster under `dir`, as `as_user` if given; its stdout.
async fn run_migrate(dir: &std::path::Path, as_user: Option<&nix::unistd::User>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_guild-sync"));
    cmd.arg("migrate")
        .env_remove("DATABASE_URL")
        .env("GUILD_SYNC_DATA_DIR", dir)
        .current_dir("/")
        .kill_on_drop(true);
    if let Some(user) = as_user {
        cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    let out = cmd.output().await.unwrap();
    assert!(
        out.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_binary_starts_its_own_cluster_as_root_and_as_a_normal_user() {
    within(CLUSTER_TEST_TIMEOUT, async {
        // As whoever runs the tests (root in CI: the server then runs as an unprivileged account).
        let dir = temp_dir();
        let first = run_migrate(dir.path(), None).await;
        assert!(first.contains("up to date"), "{first}");
        let second = run_migrate(dir.path(), None).await;
        assert!(second.contains("up to date"), "{second}");
        assert!(
            !dir.path().join("pgdata/postmaster.pid").exists(),
            "the command stops the server it started"
        );

        // As a normal user, the server runs as that user.
        if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name("postgres")
                .unwrap()
                .or_else(|| nix::unistd::User::from_name("nobody").unwrap())
                .expect("an unprivileged account exists");
            let dir = temp_dir();
            nix::unistd::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap();
            let out = run_migrate(dir.path(), Some(&user)).await;
            assert!(out.contains("up to date"), "{out}");
        }
    })
    .await;
}

/// The README's first command, run as root from a private directory (mode 0700, like `/root`):
/// it used to refuse because the server account cannot enter it. Now the cluster moves under
/// `/var/lib/guild-sync/<name>` (owned by that account), the move is printed, and the pointer in
/// `./.guild-sync` sends the second run to the same data.
#[tokio::test]
async fn the_demo_runs_as_root_from_a_private_directory() {
    within(CLUSTER_TEST_TIMEOUT, async {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};

        let home = tempfile::Builder::new()
            .prefix("gs-home-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let demo = || {
            Command::new(env!("CARGO_BIN_EXE_guild-sync"))
                .arg("demo")
                .env_remove("DATABASE_URL")
                .env_remove("GUILD_SYNC_DATA_DIR")
                .env("RUST_LOG", "warn")
                .current_dir(home.path())
                .kill_on_drop(true)
                .output()
        };
        let first = demo().await.unwrap();
        let stderr = String::from_utf8_lossy(&first.stderr).into_owned();
        let pointer = home.path().join(".guild-sync/cluster-location");
        let moved_to = std::fs::read_to_string(&pointer).ok();
        // Clean up the moved cluster whatever the assertions say.
        struct Remove(Option<std::path::PathBuf>);
        impl Drop for Remove {
            fn drop(&mut self) {
                if let Some(dir) = &self.0 {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
        let _cleanup = Remove(moved_to.as_deref().map(|p| p.trim().into()));
        assert!(first.status.success(), "{stderr}");

        if !nix::unistd::geteuid().is_root() {
            // A normal user's server runs as that user, who can enter the directory: nothing moves.
            assert!(moved_to.is_none(), "{stderr}");
            return;
        }
        let moved_to = std::path::PathBuf::from(moved_to.expect("the pointer is written").trim());
        assert!(
            moved_to.starts_with("/var/lib/guild-sync/"),
            "{}",
            moved_to.display()
        );
        assert!(
            stderr.contains(&format!("lives in {}", moved_to.display())),
            "where it went is printed: {stderr}"
        );
        let server_account = nix::unistd::User::from_name("postgres")
            .unwrap()
            .or_else(|| nix::unistd::User::from_name("nobody").unwrap())
            .expect("an unprivileged account exists");
        assert_eq!(
            std::fs::metadata(&moved_to).unwrap().uid(),
            server_account.uid.as_raw(),
            "owned by the server account"
        );
        assert!(moved_to.join("pgdata/PG_VERSION").exists());

        let second = demo().await.unwrap();
        let stderr = String::from_utf8_lossy(&second.stderr);
        assert!(second.status.success(), "{stderr}");
        assert!(
            !stderr.contains("lives in"),
            "the pointer is followed silently: {stderr}"
        );
        assert_eq!(
            std::fs::read_to_string(&pointer).unwrap().trim(),
            moved_to.display().to_string()
        );
    })
    .await;
}
