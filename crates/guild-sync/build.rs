//! Rebuild when a migration is added or changed: `sqlx::migrate!` embeds `migrations/` at
//! compile time, and without this an incremental build keeps the old list (sqlx's documented
//! build script, as `sqlx migrate build-script` writes it).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
