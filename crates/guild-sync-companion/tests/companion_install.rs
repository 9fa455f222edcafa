//! `companion install`: the exact file written for each platform — the Scheduled Task XML
//! (Windows), the LaunchAgent plist (macOS), the systemd user unit (Linux) — and the commands
//! that register it. Registering is not run here; writing the file is, into a temporary home.

use std::path::{Path, PathBuf};

use guild_sync_companion::autostart::{self, Launch, UserDirs};
use guild_sync_companion::discovery::Platform;

fn windows_dirs() -> UserDirs {
    UserDirs {
        home: PathBuf::from(r"C:\Users\Jo Doe"),
        config: PathBuf::from(r"C:\Users\Jo Doe\AppData\Roaming"),
        windows_user: Some(r"GAMINGPC\Jo Doe".into()),
    }
}

fn unix_dirs(home: &Path) -> UserDirs {
    UserDirs {
        home: home.to_path_buf(),
        config: home.join(".config"),
        windows_user: None,
    }
}

fn utf16(bytes: &[u8]) -> String {
    assert_eq!(&bytes[..2], &[0xFF, 0xFE], "a UTF-16LE byte order mark");
    let units: Vec<u16> = bytes[2..]
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .collect();
    String::from_utf16(&units).expect("valid UTF-16")
}

#[test]
fn install_writes_a_per_user_scheduled_task_on_windows() {
    let launch = Launch {
        exe: PathBuf::from(r"C:\Users\Jo Doe\Downloads\guild-sync-companion.exe"),
        args: vec![
            "--log-file".into(),
            r"C:\Users\Jo Doe\AppData\Roaming\guild-sync\companion.log".into(),
        ],
    };
    let plan = autostart::plan(Platform::Windows, &launch, &windows_dirs()).expect("plan");
    // `dirs` joins with the host's separator; compare the parts.
    assert_eq!(
        plan.file,
        PathBuf::from(r"C:\Users\Jo Doe\AppData\Roaming")
            .join("guild-sync")
            .join("companion-task.xml")
    );
    let xml = utf16(&plan.contents);
    assert_eq!(
        xml,
        r#"<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>guild-sync companion: uploads the PATTSync addon export to the guild-sync server.</Description>
    <URI>\guild-sync companion</URI>
  </RegistrationInfo>
  <Triggers>
    <LogonTrigger>
      <Enabled>true</Enabled>
      <UserId>GAMINGPC\Jo Doe</UserId>
      <Delay>PT30S</Delay>
    </LogonTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      <UserId>GAMINGPC\Jo Doe</UserId>
      <LogonType>InteractiveToken</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <StartWhenAvailable>true</StartWhenAvailable>
    <RestartOnFailure>
      <Interval>PT1M</Interval>
      <Count>999</Count>
    </RestartOnFailure>
    <Enabled>true</Enabled>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>C:\Users\Jo Doe\Downloads\guild-sync-companion.exe</Command>
      <Arguments>--log-file &quot;C:\Users\Jo Doe\AppData\Roaming\guild-sync\companion.log&quot;</Arguments>
    </Exec>
  </Actions>
</Task>
"#
    );
    let file = plan.file.to_string_lossy().into_owned();
    assert_eq!(
        plan.register,
        vec![
            vec![
                "schtasks",
                "/Create",
                "/TN",
                "guild-sync companion",
                "/XML",
                &file,
                "/F"
            ],
            vec!["schtasks", "/Run", "/TN", "guild-sync companion"],
        ]
    );
    assert_eq!(
        plan.unregister,
        vec![
            vec!["schtasks", "/End", "/TN", "guild-sync companion"],
            vec!["schtasks", "/Delete", "/TN", "guild-sync companion", "/F"],
        ]
    );
}

#[test]
fn markup_in_a_windows_path_is_escaped_not_interpreted() {
    let launch = Launch {
        exe: PathBuf::from(r"D:\Tom & Jerry's <games>\guild-sync-companion.exe"),
        args: vec![],
    };
    let plan = autostart::plan(Platform::Windows, &launch, &windows_dirs()).expect("plan");
    let xml = utf16(&plan.contents);
    assert!(
        xml.contains(
            r"<Command>D:\Tom &amp; Jerry&apos;s &lt;games&gt;\guild-sync-companion.exe</Command>"
        ),
        "{xml}"
    );
    assert!(xml.contains("<Arguments></Arguments>"), "{xml}");
}

#[test]
fn install_writes_a_launch_agent_on_macos() {
    let home = PathBuf::from("/Users/jo");
    let launch = Launch {
        exe: PathBuf::from("/Applications/guild-sync/guild-sync-companion"),
        args: vec!["--config".into(), "/Users/jo/guild & co.toml".into()],
    };
    let plan = autostart::plan(Platform::MacOs, &launch, &unix_dirs(&home)).expect("plan");
    assert_eq!(
        plan.file,
        PathBuf::from("/Users/jo/Library/LaunchAgents/org.guild-sync.companion.plist")
    );
    assert_eq!(
        String::from_utf8(plan.contents.clone()).expect("UTF-8"),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>org.guild-sync.companion</string>
  <key>ProgramArguments</key>
  <array>
    <string>/Applications/guild-sync/guild-sync-companion</string>
    <string>--config</string>
    <string>/Users/jo/guild &amp; co.toml</string>
  </array>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <dict>
    <key>SuccessfulExit</key>
    <false/>
  </dict>
  <key>ThrottleInterval</key>
  <integer>60</integer>
  <key>ProcessType</key>
  <string>Background</string>
  <key>StandardOutPath</key>
  <string>/Users/jo/Library/Logs/guild-sync-companion.log</string>
  <key>StandardErrorPath</key>
  <string>/Users/jo/Library/Logs/guild-sync-companion.log</string>
</dict>
</plist>
"#
    );
    let file = "/Users/jo/Library/LaunchAgents/org.guild-sync.companion.plist";
    assert_eq!(plan.register, vec![vec!["launchctl", "load", "-w", file]]);
    assert_eq!(
        plan.unregister,
        vec![vec!["launchctl", "unload", "-w", file]]
    );
}

#[test]
fn install_writes_a_systemd_user_unit_on_linux() {
    let home = PathBuf::from("/home/jo");
    let launch = Launch {
        exe: PathBuf::from("/home/jo/bin/guild-sync"),
        args: vec![
            "companion".into(),
            "--config".into(),
            "/home/jo/100% $x.toml".into(),
        ],
    };
    let plan = autostart::plan(Platform::Other, &launch, &unix_dirs(&home)).expect("plan");
    assert_eq!(
        plan.file,
        PathBuf::from("/home/jo/.config/systemd/user/guild-sync-companion.service")
    );
    assert_eq!(
        String::from_utf8(plan.contents.clone()).expect("UTF-8"),
        "[Unit]\n\
         Description=guild-sync companion: uploads the PATTSync addon export to the guild-sync server\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         ExecStart=\"/home/jo/bin/guild-sync\" \"companion\" \"--config\" \"/home/jo/100%% $$x.toml\"\n\
         Restart=on-failure\n\
         RestartSec=60\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n"
    );
    assert_eq!(
        plan.register,
        vec![
            vec!["systemctl", "--user", "daemon-reload"],
            vec![
                "systemctl",
                "--user",
                "enable",
                "--now",
                "guild-sync-companion.service"
            ],
        ]
    );
    assert_eq!(
        plan.unregister,
        vec![vec![
            "systemctl",
            "--user",
            "disable",
            "--now",
            "guild-sync-companion.service"
        ]]
    );
}

#[test]
fn a_command_with_a_line_break_is_refused() {
    let launch = Launch {
        exe: PathBuf::from("/opt/guild-sync-companion"),
        args: vec!["--config".into(), "x\nExecStartPre=/bin/evil".into()],
    };
    let err = autostart::plan(Platform::Other, &launch, &unix_dirs(Path::new("/home/jo")))
        .expect_err("refused");
    assert!(err.to_string().contains("control characters"), "{err}");
}

#[test]
fn install_writes_the_file_and_uninstall_removes_it_without_registering() {
    let home = tempfile::tempdir().expect("tempdir");
    let launch = Launch {
        exe: PathBuf::from("/opt/guild-sync-companion"),
        args: vec![],
    };
    let mut plan =
        autostart::plan(Platform::Other, &launch, &unix_dirs(home.path())).expect("plan");
    // Registering talks to the system's service manager: not in a test.
    plan.register.clear();
    plan.unregister.clear();
    autostart::install(&plan).expect("installed");
    assert_eq!(std::fs::read(&plan.file).expect("written"), plan.contents);
    assert!(autostart::uninstall(&plan).expect("removed"));
    assert!(!plan.file.exists());
    // Uninstalling twice is fine and says there was nothing.
    assert!(!autostart::uninstall(&plan).expect("nothing to remove"));
}
