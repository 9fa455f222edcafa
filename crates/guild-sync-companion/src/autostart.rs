//! `companion install` / `uninstall`: start the companion at login, per user, with no
//! administrator rights — a Scheduled Task with a logon trigger on Windows, a LaunchAgent on
//! macOS, a systemd user unit on Linux.
//!
//! [`plan`] is pure: from the platform, the command to start and the user's folders it gives the
//! file to write (its exact contents) and the commands that register and unregister it. Tests
//! assert the contents on every platform; only [`install`] and [`uninstall`] write the file and
//! run `schtasks`, `launchctl` or `systemctl`.
//!
//! Paths come from the user's machine and may hold anything (`&`, quotes, `%`, spaces), so each
//! format gets its own escaping: XML for the task and the plist, systemd's quoting for the unit,
//! and Windows' command-line quoting inside the task's `<Arguments>`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::discovery::Platform;

/// The Scheduled Task's name (Windows).
pub const TASK_NAME: &str = "guild-sync companion";

/// The LaunchAgent's label and file stem (macOS).
pub const LAUNCH_AGENT_LABEL: &str = "org.guild-sync.companion";

/// The systemd user unit (Linux).
pub const SYSTEMD_UNIT: &str = "guild-sync-companion.service";

/// How long the system waits before starting the companion again after it stopped with an
/// error, in seconds: long enough not to hammer a server that refuses us.
pub const RESTART_DELAY_SECS: u32 = 60;

/// The command that starts the companion: the executable and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub exe: PathBuf,
    pub args: Vec<String>,
}

/// The user's folders and name, as the plan needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDirs {
    pub home: PathBuf,
    /// The user's config directory (`%APPDATA%` on Windows).
    pub config: PathBuf,
    /// `DOMAIN\user` for the task's logon trigger (Windows).
    pub windows_user: Option<String>,
}

impl UserDirs {
    /// This user's folders.
    pub fn current() -> Result<UserDirs> {
        let home = dirs::home_dir().context("cannot find your home folder")?;
        let config = dirs::config_dir().context("cannot find your config folder")?;
        let windows_user = match (std::env::var("USERDOMAIN"), std::env::var("USERNAME")) {
            (Ok(domain), Ok(user)) if !domain.is_empty() && !user.is_empty() => {
                Some(format!("{domain}\\{user}"))
            }
            (_, Ok(user)) if !user.is_empty() => Some(user),
            _ => None,
        };
        Ok(UserDirs {
            home,
            config,
            windows_user,
        })
    }
}

/// What installing writes and runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The file that makes the system start the companion.
    pub file: PathBuf,
    /// Its bytes (UTF-16 for the task XML, which is what `schtasks /XML` reads reliably).
    pub contents: Vec<u8>,
    /// Run after writing the file.
    pub register: Vec<Vec<String>>,
    /// Run before removing the file.
    pub unregister: Vec<Vec<String>>,
    /// Where the companion's output goes when started at login, to tell the officer.
    pub log: String,
}

/// The plan for `platform`.
pub fn plan(platform: Platform, launch: &Launch, dirs: &UserDirs) -> Result<Plan> {
    for part in std::iter::once(launch.exe.to_string_lossy().into_owned())
        .chain(launch.args.iter().cloned())
    {
        // No format here can carry a line break or NUL in a command safely.
        if part.chars().any(|c| c.is_control()) {
            bail!("cannot register a command containing control characters: {part:?}");
        }
    }
    Ok(match platform {
        Platform::Windows => windows_task(launch, dirs),
        Platform::MacOs => launch_agent(launch, dirs),
        Platform::Other => systemd_unit(launch, dirs),
    })
}

fn windows_task(launch: &Launch, dirs: &UserDirs) -> Plan {
    let file = dirs.config.join("guild-sync").join("companion-task.xml");
    let user = dirs
        .windows_user
        .as_deref()
        .map(|u| format!("      <UserId>{}</UserId>\n", xml_escape(u)))
        .unwrap_or_default();
    let arguments = launch
        .args
        .iter()
        .map(|a| windows_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>guild-sync companion: uploads the PATTSync addon export to the guild-sync server.</Description>
    <URI>\{name}</URI>
  </RegistrationInfo>
  <Triggers>
    <LogonTrigger>
      <Enabled>true</Enabled>
{user}      <Delay>PT30S</Delay>
    </LogonTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
{user}      <LogonType>InteractiveToken</LogonType>
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
      <Interval>PT{delay_min}M</Interval>
      <Count>999</Count>
    </RestartOnFailure>
    <Enabled>true</Enabled>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{command}</Command>
      <Arguments>{arguments}</Arguments>
    </Exec>
  </Actions>
</Task>
"#,
        name = xml_escape(TASK_NAME),
        delay_min = RESTART_DELAY_SECS / 60,
        command = xml_escape(&launch.exe.to_string_lossy()),
        arguments = xml_escape(&arguments),
    );
    let file_arg = file.to_string_lossy().into_owned();
    Plan {
        contents: utf16_with_bom(&xml),
        register: vec![
            strings(&[
                "schtasks", "/Create", "/TN", TASK_NAME, "/XML", &file_arg, "/F",
            ]),
            // Start it now too, as launchd and systemd do, so uploads begin without a re-login.
            strings(&["schtasks", "/Run", "/TN", TASK_NAME]),
        ],
        unregister: vec![
            strings(&["schtasks", "/End", "/TN", TASK_NAME]),
            strings(&["schtasks", "/Delete", "/TN", TASK_NAME, "/F"]),
        ],
        log: "the log file given by --log-file".into(),
        file,
    }
}

fn launch_agent(launch: &Launch, dirs: &UserDirs) -> Plan {
    let file = dirs
        .home
        .join("Library/LaunchAgents")
        .join(format!("{LAUNCH_AGENT_LABEL}.plist"));
    let log = dirs.home.join("Library/Logs/guild-sync-companion.log");
    let program_arguments: String = std::iter::once(launch.exe.to_string_lossy().into_owned())
        .chain(launch.args.iter().cloned())
        .map(|a| format!("    <string>{}</string>\n", xml_escape(&a)))
        .collect();
    let log_xml = xml_escape(&log.to_string_lossy());
    let plist = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>{LAUNCH_AGENT_LABEL}</string>
  <key>ProgramArguments</key>
  <array>
{program_arguments}  </array>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <dict>
    <key>SuccessfulExit</key>
    <false/>
  </dict>
  <key>ThrottleInterval</key>
  <integer>{RESTART_DELAY_SECS}</integer>
  <key>ProcessType</key>
  <string>Background</string>
  <key>StandardOutPath</key>
  <string>{log_xml}</string>
  <key>StandardErrorPath</key>
  <string>{log_xml}</string>
</dict>
</plist>
"#
    );
    let file_arg = file.to_string_lossy().into_owned();
    Plan {
        contents: plist.into_bytes(),
        register: vec![strings(&["launchctl", "load", "-w", &file_arg])],
        unregister: vec![strings(&["launchctl", "unload", "-w", &file_arg])],
        log: log.display().to_string(),
        file,
    }
}

fn systemd_unit(launch: &Launch, dirs: &UserDirs) -> Plan {
    let file = dirs.config.join("systemd/user").join(SYSTEMD_UNIT);
    let exec_start = std::iter::once(launch.exe.to_string_lossy().into_owned())
        .chain(launch.args.iter().cloned())
        .map(|a| systemd_quote(&a))
        .collect::<Vec<_>>()
        .join(" ");
    let unit = format!(
        "[Unit]\n\
         Description=guild-sync companion: uploads the PATTSync addon export to the guild-sync server\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         ExecStart={exec_start}\n\
         Restart=on-failure\n\
         RestartSec={RESTART_DELAY_SECS}\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n"
    );
    Plan {
        contents: unit.into_bytes(),
        register: vec![
            strings(&["systemctl", "--user", "daemon-reload"]),
            strings(&["systemctl", "--user", "enable", "--now", SYSTEMD_UNIT]),
        ],
        unregister: vec![strings(&[
            "systemctl",
            "--user",
            "disable",
            "--now",
            SYSTEMD_UNIT,
        ])],
        log: format!("journalctl --user -u {SYSTEMD_UNIT}"),
        file,
    }
}

/// Write the plan's file and register it.
pub fn install(plan: &Plan) -> Result<()> {
    if let Some(dir) = plan.file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&plan.file, &plan.contents)
        .with_context(|| format!("cannot write {}", plan.file.display()))?;
    for command in &plan.register {
        run(command).with_context(|| {
            format!(
                "{} was written but registering it failed",
                plan.file.display()
            )
        })?;
    }
    Ok(())
}

/// Unregister and remove the plan's file. Unregistering something not registered is not an
/// error (uninstall twice is fine); a file that cannot be removed is.
pub fn uninstall(plan: &Plan) -> Result<bool> {
    for command in &plan.unregister {
        if let Err(e) = run(command) {
            tracing::warn!(error = %format!("{e:#}"), "unregistering reported a problem");
        }
    }
    match std::fs::remove_file(&plan.file) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", plan.file.display())),
    }
}

fn run(command: &[String]) -> Result<()> {
    let (program, args) = command.split_first().context("an empty command")?;
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        let said = if said.trim().is_empty() {
            String::from_utf8_lossy(&output.stdout)
        } else {
            said
        };
        bail!(
            "`{}` failed ({}): {}",
            command.join(" "),
            output.status,
            said.trim()
        );
    }
    Ok(())
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

/// Escape text for an XML element or attribute.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Quote one argument so Windows' `CommandLineToArgvW` gives it back unchanged: backslashes are
/// literal except before a quote, where they and the quote are escaped.
fn windows_quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '"']) {
        return arg.to_owned();
    }
    let mut out = String::from('"');
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                out.push('"');
                backslashes = 0;
            }
            c => {
                out.extend(std::iter::repeat_n('\\', backslashes));
                out.push(c);
                backslashes = 0;
            }
        }
    }
    out.extend(std::iter::repeat_n('\\', backslashes * 2));
    out.push('"');
    out
}

/// Quote one word of a systemd `ExecStart=`: double quotes with C escapes, and `%` and `$`
/// doubled so systemd does not expand specifiers or variables from a path.
fn systemd_quote(arg: &str) -> String {
    let mut out = String::from('"');
    for c in arg.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn utf16_with_bom(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    bytes
}

/// The path `plan` would write, for `uninstall` and messages.
pub fn file_for(platform: Platform, dirs: &UserDirs) -> PathBuf {
    let launch = Launch {
        exe: PathBuf::new(),
        args: Vec::new(),
    };
    match platform {
        Platform::Windows => windows_task(&launch, dirs).file,
        Platform::MacOs => launch_agent(&launch, dirs).file,
        Platform::Other => systemd_unit(&launch, dirs).file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_quoting_round_trips_through_the_argv_rules() {
        assert_eq!(windows_quote("--once"), "--once");
        assert_eq!(
            windows_quote(r"C:\Users\Jo Doe\AppData\Roaming\guild-sync\companion.log"),
            r#""C:\Users\Jo Doe\AppData\Roaming\guild-sync\companion.log""#
        );
        assert_eq!(
            windows_quote(r"C:\dir with space\"),
            r#""C:\dir with space\\""#
        );
        assert_eq!(windows_quote(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(windows_quote(""), r#""""#);
    }

    #[test]
    fn systemd_quoting_doubles_specifiers_and_variables() {
        assert_eq!(
            systemd_quote(r#"/home/jo/100% "$HOME"\x"#),
            r#""/home/jo/100%% \"$$HOME\"\\x""#
        );
    }

    #[test]
    fn xml_escaping_covers_markup() {
        assert_eq!(
            xml_escape(r#"<a & 'b' "c">"#),
            "&lt;a &amp; &apos;b&apos; &quot;c&quot;&gt;"
        );
    }
}
