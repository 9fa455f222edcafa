//! Finding the PATTSync SavedVariables file with no path given: WoW keeps it at
//! `<install>/<flavour>/WTF/Account/<ACCOUNT>/SavedVariables/PATTSync.lua`.
//!
//! Which install folders are searched is a pure function of the platform, the install paths the
//! Windows registry names and the system drive ([`install_roots`]), so every layout is tested on
//! Linux with a fake tree under a temporary directory. [`discover`] then lists every
//! `PATTSync.lua` under those roots, newest first: an officer with several accounts or both
//! retail and classic gets the file WoW wrote last, which is the one they just logged out of.
//! Only the registry read ([`registry_install_paths`]) is Windows-only.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The addon's SavedVariables file name.
pub const FILE_NAME: &str = "PATTSync.lua";

/// Game flavours installed side by side under one WoW folder since 2019.
pub const FLAVOURS: &[&str] = &["_retail_", "_classic_", "_classic_era_"];

/// The WoW folder's name in the usual install places.
const WOW_FOLDER: &str = "World of Warcraft";

/// Where the companion is running, for the install places and the start-at-login mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Windows,
    MacOs,
    /// Linux and the rest: WoW does not run natively, so there is no usual install place.
    Other,
}

impl Platform {
    /// The platform this binary was built for.
    pub fn current() -> Platform {
        if cfg!(windows) {
            Platform::Windows
        } else if cfg!(target_os = "macos") {
            Platform::MacOs
        } else {
            Platform::Other
        }
    }
}

/// The WoW install folders to search, in order, without duplicates.
///
/// `registry` are the paths the Windows registry gives (see [`registry_install_paths`]); one
/// that points into a flavour folder (Blizzard's `InstallPath` is `…\World of Warcraft\_retail_\`)
/// is searched from its parent, so the other flavours are found too. `system_root` is `C:\` on
/// Windows and `/` on macOS; tests pass a temporary directory.
pub fn install_roots(platform: Platform, registry: &[PathBuf], system_root: &Path) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    let mut add = |path: PathBuf| {
        if !roots.contains(&path) {
            roots.push(path);
        }
    };
    match platform {
        Platform::Windows => {
            for path in registry {
                let in_flavour = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| FLAVOURS.contains(&n));
                match path.parent() {
                    Some(parent) if in_flavour => add(parent.to_path_buf()),
                    _ => add(path.clone()),
                }
            }
            add(system_root.join("Program Files (x86)").join(WOW_FOLDER));
            add(system_root.join("Program Files").join(WOW_FOLDER));
        }
        Platform::MacOs => add(system_root.join("Applications").join(WOW_FOLDER)),
        Platform::Other => {}
    }
    roots
}

/// One `PATTSync.lua` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    /// When WoW last wrote it.
    pub modified: SystemTime,
}

/// What a search found, and where it looked (for the message when nothing is found).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// The `WTF/Account` folders that were looked into (existing or not).
    pub searched: Vec<PathBuf>,
    /// Every file found, most recently written first.
    pub found: Vec<Found>,
}

impl Discovery {
    /// The file to use: the most recently written.
    pub fn newest(&self) -> Option<&Found> {
        self.found.first()
    }

    /// The error an officer sees when nothing was found: where we looked and what to do.
    pub fn not_found_message(&self) -> String {
        let mut message = if self.searched.is_empty() {
            format!("no {FILE_NAME} was found: WoW has no usual install place on this system.\n")
        } else {
            format!("no {FILE_NAME} was found. Looked in:\n")
        };
        for dir in &self.searched {
            message.push_str(&format!("  {}\n", dir.display()));
        }
        message.push_str(
            "Log in to WoW with the PATTSync addon enabled and log out (or /reload) once so WoW \
             writes the file, or give its path: --saved-variables \"<WoW folder>\\_retail_\\WTF\\\
             Account\\<ACCOUNT>\\SavedVariables\\PATTSync.lua\" (or store it with \
             `setup --saved-variables …`).",
        );
        message
    }
}

/// Every `PATTSync.lua` under `roots`, newest first. Each root is searched as a WoW folder
/// (`<root>/<flavour>/WTF/Account/*`) and as a flavour folder itself (`<root>/WTF/Account/*`,
/// the layout before flavours). Unreadable folders are skipped: the search must not fail
/// because one install is half removed.
pub fn discover(roots: &[PathBuf]) -> Discovery {
    let mut discovery = Discovery::default();
    for root in roots {
        let game_dirs = FLAVOURS
            .iter()
            .map(|flavour| root.join(flavour))
            .chain(std::iter::once(root.clone()));
        for game_dir in game_dirs {
            let accounts = game_dir.join("WTF").join("Account");
            if let Ok(entries) = std::fs::read_dir(&accounts) {
                for entry in entries.flatten() {
                    let file = entry.path().join("SavedVariables").join(FILE_NAME);
                    if let Ok(meta) = std::fs::metadata(&file)
                        && meta.is_file()
                    {
                        discovery.found.push(Found {
                            path: file,
                            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        });
                    }
                }
            }
            discovery.searched.push(accounts);
        }
    }
    // Ties (same mtime) go by path so the choice does not depend on directory order.
    discovery.found.sort_by(|a, b| {
        b.modified
            .cmp(&a.modified)
            .then_with(|| a.path.cmp(&b.path))
    });
    discovery
}

/// Search the usual places of this platform.
pub fn discover_here() -> Discovery {
    discover(&install_roots(
        Platform::current(),
        &registry_install_paths(),
        &system_root(),
    ))
}

/// `C:\` (the system drive) on Windows, `/` elsewhere.
pub fn system_root() -> PathBuf {
    if cfg!(windows) {
        let drive = std::env::var("SystemDrive").unwrap_or_else(|_| "C:".to_owned());
        PathBuf::from(format!("{drive}\\"))
    } else {
        PathBuf::from("/")
    }
}

/// The WoW install folders the Windows registry names: Blizzard's own key (`InstallPath`,
/// usually the `_retail_` folder) and the uninstall entry (`InstallLocation`), in both the
/// 32-bit and 64-bit views. Missing keys are skipped.
#[cfg(windows)]
pub fn registry_install_paths() -> Vec<PathBuf> {
    use winreg::RegKey;
    use winreg::enums::HKEY_LOCAL_MACHINE;

    const KEYS: &[(&str, &str)] = &[
        (
            r"SOFTWARE\WOW6432Node\Blizzard Entertainment\World of Warcraft",
            "InstallPath",
        ),
        (
            r"SOFTWARE\Blizzard Entertainment\World of Warcraft",
            "InstallPath",
        ),
        (
            r"SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\World of Warcraft",
            "InstallLocation",
        ),
        (
            r"SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\World of Warcraft",
            "InstallLocation",
        ),
    ];
    let hklm = RegKey::predef(HKEY_LOCAL_MACHINE);
    KEYS.iter()
        .filter_map(|(key, value)| {
            hklm.open_subkey(key)
                .ok()?
                .get_value::<String, _>(value)
                .ok()
        })
        .map(|path| path.trim().trim_end_matches(['\\', '/']).to_owned())
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// No registry outside Windows.
#[cfg(not(windows))]
pub fn registry_install_paths() -> Vec<PathBuf> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Write a `PATTSync.lua` under `base/relative`, last written `age_secs` ago.
    fn plant(base: &Path, relative: &str, age_secs: u64) -> PathBuf {
        let path = base.join(relative);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, "PATTSyncDB = {}\n").expect("write");
        let file = std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open");
        file.set_modified(SystemTime::now() - Duration::from_secs(age_secs))
            .expect("set mtime");
        path
    }

    #[test]
    fn windows_searches_the_registry_path_first_then_both_program_files() {
        let c = Path::new("C:\\");
        let registry = [PathBuf::from("D:/Games/World of Warcraft/_retail_")];
        assert_eq!(
            install_roots(Platform::Windows, &registry, c),
            vec![
                PathBuf::from("D:/Games/World of Warcraft"),
                c.join("Program Files (x86)").join("World of Warcraft"),
                c.join("Program Files").join("World of Warcraft"),
            ]
        );
        // A registry entry naming a usual place is not searched twice.
        let registry = [c.join("Program Files (x86)").join("World of Warcraft")];
        assert_eq!(install_roots(Platform::Windows, &registry, c).len(), 2);
    }

    #[test]
    fn macos_searches_applications_and_other_platforms_nothing() {
        assert_eq!(
            install_roots(Platform::MacOs, &[], Path::new("/")),
            vec![PathBuf::from("/Applications/World of Warcraft")]
        );
        assert!(install_roots(Platform::Other, &[], Path::new("/")).is_empty());
    }

    #[test]
    fn the_windows_layout_is_found_under_program_files_x86() {
        let c = tempfile::tempdir().expect("tempdir");
        let file = plant(
            c.path(),
            "Program Files (x86)/World of Warcraft/_retail_/WTF/Account/ACCOUNT1/SavedVariables/PATTSync.lua",
            60,
        );
        // Another addon's file next to it is not ours.
        plant(
            c.path(),
            "Program Files (x86)/World of Warcraft/_retail_/WTF/Account/ACCOUNT1/SavedVariables/Other.lua",
            0,
        );
        let found = discover(&install_roots(Platform::Windows, &[], c.path()));
        assert_eq!(found.newest().map(|f| &f.path), Some(&file));
        assert_eq!(found.found.len(), 1);
    }

    #[test]
    fn the_newest_file_wins_across_accounts_flavours_and_install_places() {
        let c = tempfile::tempdir().expect("tempdir");
        let wow = "Program Files/World of Warcraft";
        let old_retail = plant(
            c.path(),
            &format!("{wow}/_retail_/WTF/Account/OLD/SavedVariables/PATTSync.lua"),
            3600,
        );
        let classic = plant(
            c.path(),
            &format!("{wow}/_classic_/WTF/Account/MAIN/SavedVariables/PATTSync.lua"),
            10,
        );
        let registry_retail = plant(
            c.path(),
            "D/Games/World of Warcraft/_retail_/WTF/Account/ALT/SavedVariables/PATTSync.lua",
            600,
        );
        let registry = [c.path().join("D/Games/World of Warcraft/_retail_")];
        let found = discover(&install_roots(Platform::Windows, &registry, c.path()));
        let paths: Vec<_> = found.found.iter().map(|f| f.path.clone()).collect();
        assert_eq!(paths, vec![classic, registry_retail, old_retail]);
    }

    #[test]
    fn the_macos_layout_is_found_under_applications() {
        let root = tempfile::tempdir().expect("tempdir");
        let file = plant(
            root.path(),
            "Applications/World of Warcraft/_retail_/WTF/Account/12345#1/SavedVariables/PATTSync.lua",
            5,
        );
        let found = discover(&install_roots(Platform::MacOs, &[], root.path()));
        assert_eq!(found.newest().map(|f| &f.path), Some(&file));
    }

    #[test]
    fn an_install_without_flavour_folders_is_searched_too() {
        let root = tempfile::tempdir().expect("tempdir");
        let file = plant(
            root.path(),
            "World of Warcraft/WTF/Account/A/SavedVariables/PATTSync.lua",
            5,
        );
        let found = discover(&[root.path().join("World of Warcraft")]);
        assert_eq!(found.newest().map(|f| &f.path), Some(&file));
    }

    #[test]
    fn nothing_found_says_where_it_looked_and_what_to_do() {
        let c = tempfile::tempdir().expect("tempdir");
        let found = discover(&install_roots(Platform::Windows, &[], c.path()));
        assert!(found.newest().is_none());
        let message = found.not_found_message();
        assert!(
            message.contains(
                &c.path()
                    .join("Program Files (x86)/World of Warcraft/_retail_/WTF/Account")
                    .display()
                    .to_string()
            ),
            "{message}"
        );
        assert!(message.contains("--saved-variables"), "{message}");
    }
}
