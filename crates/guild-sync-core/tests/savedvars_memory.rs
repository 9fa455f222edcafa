//! The SavedVariables parser's memory bound, measured with a counting allocator: a hostile file
//! within the size limit (the 15.7 MB nested-table bomb that once peaked at 1.83 GB) is refused
//! with a clear message without its tree ever growing past ~64 MB, while the largest honest
//! export still parses. Its own test binary, so no other test's allocations are counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use guild_sync_core::addon::{AddonExport, AddonInputError};
use guild_sync_core::savedvars::{self, MAX_INPUT_BYTES, SavedVarsError};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// The tests share the counters, so they measure one at a time.
static MEASURING: Mutex<()> = Mutex::new(());

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The bound the parser promises for a file within [`MAX_INPUT_BYTES`], beyond the input itself.
const BOUND: usize = 64 * 1024 * 1024;

/// Bytes allocated at the peak of `f`, above what was live before it.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed) - base)
}

const HEAD: &str = "PATTSyncDB = { lastExport = { exportTime = 1, characters = {";

/// 15.7 MB of empty tables nested 60 deep, under the export's `characters`.
fn nested_table_bomb() -> Vec<u8> {
    let unit = format!("{}{},", "{".repeat(60), "}".repeat(60));
    let target = (15.7 * 1024.0 * 1024.0) as usize;
    let mut src = HEAD.as_bytes().to_vec();
    while src.len() + unit.len() + 8 < target {
        src.extend_from_slice(unit.as_bytes());
    }
    src.extend_from_slice(b"} } }");
    assert!(
        src.len() <= MAX_INPUT_BYTES,
        "the bomb is within the size limit"
    );
    src
}

#[test]
fn the_nested_table_bomb_is_refused_within_the_memory_bound() {
    let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let bomb = nested_table_bomb();
    let (result, peak) = peak_of(|| savedvars::parse(&bomb));
    let err = result.expect_err("refused");
    assert!(matches!(err, SavedVarsError::TooComplex { .. }), "{err}");
    assert!(err.to_string().contains("values"), "{err}");
    assert!(peak < BOUND, "peak {peak} bytes");

    let (result, peak) = peak_of(|| AddonExport::from_saved_variables(&bomb));
    let err = result.expect_err("refused");
    assert!(matches!(err, AddonInputError::MalformedLua(_)), "{err}");
    assert!(
        err.to_string().contains("not a PATTSync export"),
        "a clear message: {err}"
    );
    assert!(peak < BOUND, "peak {peak} bytes");
}

#[test]
fn long_strings_are_refused_before_they_are_copied() {
    let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let mut src = format!("{HEAD} {{ name = \"").into_bytes();
    src.extend(std::iter::repeat_n(b'a', MAX_INPUT_BYTES - 200));
    src.extend_from_slice(b"\" } } } }");
    let (result, peak) = peak_of(|| savedvars::parse(&src));
    assert!(
        matches!(result, Err(SavedVarsError::TooComplex { .. })),
        "{result:?}"
    );
    assert!(peak < 1024 * 1024, "peak {peak} bytes");
}

#[test]
fn the_largest_honest_export_parses_within_the_bound() {
    let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let mut src = HEAD.to_string();
    for i in 0..guild_sync_core::addon::MAX_CHARACTERS {
        src.push_str(&format!(
            r#"{{ ["name"] = "Char{i}", ["realm"] = "Senjin", ["class"] = "Death Knight", ["classFile"] = "DEATHKNIGHT", ["level"] = 80, ["rank"] = 3, ["rankName"] = "Member", ["zone"] = "Dornogal", ["note"] = "Discord: someone{i}", ["officerNote"] = "alt of Char{i}", ["isOnline"] = false, ["lastOnline"] = "3d 5h", ["achievementPoints"] = 12345, }},"#
        ));
    }
    src.push_str("} } }");
    let (result, peak) = peak_of(|| AddonExport::from_saved_variables(src.as_bytes()));
    let export = result.expect("accepted");
    assert_eq!(
        export.characters.len(),
        guild_sync_core::addon::MAX_CHARACTERS
    );
    assert!(peak < BOUND, "peak {peak} bytes");
}
