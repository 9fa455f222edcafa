//! `guild-sync companion` (SPEC §2) still works now that the companion is its own crate: the
//! service's binary hands its flags to `guild_sync_companion::cli` and names itself in hints.

use std::process::Command;

fn companion(settings_dir: &tempfile::TempDir) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_guild-sync"));
    command
        .arg("companion")
        .env_remove("GUILD_SYNC_API_URL")
        .env_remove("GUILD_SYNC_API_KEY")
        .env_remove("WOW_SAVED_VARIABLES_PATH")
        .env(
            "GUILD_SYNC_COMPANION_CONFIG",
            settings_dir.path().join("companion.toml"),
        )
        // No guild-sync.toml from the developer's checkout.
        .current_dir(settings_dir.path());
    command
}

#[test]
fn the_subcommand_prints_the_path_it_would_watch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("PATTSync.lua");
    let out = companion(&dir)
        .arg("--print-path")
        .arg("--saved-variables")
        .arg(&file)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        file.display().to_string()
    );
}

#[test]
fn the_subcommand_names_what_is_missing_and_how_to_set_it_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = companion(&dir)
        .args(["--once", "--saved-variables", "/nonexistent/PATTSync.lua"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the server is not set"), "{stderr}");
    assert!(stderr.contains("GUILD_SYNC_API_URL"), "{stderr}");
    assert!(stderr.contains("`guild-sync companion setup`"), "{stderr}");
}
