//! Parse one PATTSync export file the way `guild-sync sync addon` does, and print what came of
//! it. Exists to measure the parser's peak memory on hostile files without a database:
//! `/usr/bin/time -v cargo run --release -p guild-sync-core --example parse_export -- FILE`.

use guild_sync_core::addon::AddonExport;

fn main() -> std::process::ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: parse_export FILE");
        return std::process::ExitCode::FAILURE;
    };
    let contents = match std::fs::read(&path) {
        Ok(c) => c,
        Err(err) => {
            eprintln!("cannot read {path}: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match AddonExport::from_saved_variables(&contents) {
        Ok(export) => {
            println!("{} characters", export.characters.len());
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            println!("refused: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
