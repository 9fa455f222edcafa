//! Signed `custom_id`s for the buttons guild-sync puts on Discord messages: `act.args.mac`,
//! where `mac` is the first [`MAC_HEX`] hex digits of HMAC-SHA-256 over `act.args` with the
//! database's `discord_buttons` key. Discord hands a button's `custom_id` back verbatim, but
//! anyone can craft an interaction payload naming any id for a message they can see only
//! through a client mod — so the id is authenticated, and a forged one is refused before any
//! row is read. Pure except for [`button_key`].

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgExecutor;

use guild_sync_core::report::{ButtonAction, ReportButton};

/// Hex digits of the MAC kept in a custom id: 64 bits, far beyond guessing through Discord's
/// rate limits, and short enough for the 100-character `custom_id`.
pub const MAC_HEX: usize = 16;

/// `service_secrets.name` of the button key.
const KEY_NAME: &str = "discord_buttons";

/// The button signing key of this database: generated on first use and kept in the database
/// (the same table as the claims' OAuth state secret), so `serve` and a `report` run from the
/// CLI sign and verify alike with nothing to configure.
pub async fn button_key(db: impl PgExecutor<'_>) -> anyhow::Result<Vec<u8>> {
    crate::db::claims::service_secret(db, KEY_NAME).await
}

/// What a button asks for, once its id is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonId {
    /// Accept suggestion (audit issue) `0`.
    Link(i32),
    /// Dismiss suggestion `0`.
    NotThem(i32),
    /// List the candidates of orphan issue `0`.
    Candidates(i32),
    /// From orphan issue `issue`'s candidate list: link character `character` and Discord user
    /// `discord_user` (both `id` columns). `report`: the report message the list came from
    /// (its Discord id), to edit it too; `None` in ids made before it was carried.
    LinkCandidate {
        issue: i32,
        character: i32,
        discord_user: i32,
        report: Option<u64>,
    },
}

impl ButtonId {
    /// The audit issue the button acts on.
    pub fn issue(self) -> i32 {
        match self {
            ButtonId::Link(id) | ButtonId::NotThem(id) | ButtonId::Candidates(id) => id,
            ButtonId::LinkCandidate { issue, .. } => issue,
        }
    }

    fn unsigned(self) -> String {
        match self {
            ButtonId::Link(id) => format!("sl.{id}"),
            ButtonId::NotThem(id) => format!("sn.{id}"),
            ButtonId::Candidates(id) => format!("oc.{id}"),
            ButtonId::LinkCandidate {
                issue,
                character,
                discord_user,
                report: None,
            } => format!("ol.{issue}-{character}-{discord_user}"),
            ButtonId::LinkCandidate {
                issue,
                character,
                discord_user,
                report: Some(report),
            } => format!("ol.{issue}-{character}-{discord_user}-{report}"),
        }
    }

    fn parse_unsigned(act: &str, args: &str) -> Option<ButtonId> {
        let id = || args.parse().ok();
        match act {
            "sl" => id().map(ButtonId::Link),
            "sn" => id().map(ButtonId::NotThem),
            "oc" => id().map(ButtonId::Candidates),
            "ol" => {
                let parts: Vec<&str> = args.split('-').collect();
                let (issue, character, discord_user, report) = match parts[..] {
                    [issue, character, user] => (issue, character, user, None),
                    [issue, character, user, report] => {
                        (issue, character, user, Some(report.parse().ok()?))
                    }
                    _ => return None,
                };
                Some(ButtonId::LinkCandidate {
                    issue: issue.parse().ok()?,
                    character: character.parse().ok()?,
                    discord_user: discord_user.parse().ok()?,
                    report,
                })
            }
            _ => None,
        }
    }

    /// The signed custom id.
    pub fn sign(self, key: &[u8]) -> String {
        let unsigned = self.unsigned();
        let mac = mac_hex(key, &unsigned);
        format!("{unsigned}.{mac}")
    }

    /// The button a custom id names, when its MAC is right; `None` for anything else (forged,
    /// altered, made with another database's key, or not one of ours).
    pub fn verify(custom_id: &str, key: &[u8]) -> Option<ButtonId> {
        let (unsigned, mac) = custom_id.rsplit_once('.')?;
        let expected = mac_hex(key, unsigned);
        // Constant time, so the MAC cannot be found a digit at a time.
        if mac.len() != expected.len()
            || !bool::from(subtle::ConstantTimeEq::ct_eq(
                mac.as_bytes(),
                expected.as_bytes(),
            ))
        {
            return None;
        }
        let (act, args) = unsigned.split_once('.')?;
        ButtonId::parse_unsigned(act, args)
    }

    /// The id of a report button.
    pub fn of_report_button(button: &ReportButton) -> ButtonId {
        match button.action {
            ButtonAction::Link => ButtonId::Link(button.issue_id),
            ButtonAction::NotThem => ButtonId::NotThem(button.issue_id),
            ButtonAction::Candidates => ButtonId::Candidates(button.issue_id),
        }
    }
}

fn mac_hex(key: &[u8], message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message.as_bytes());
    let mut hex = hex::encode(mac.finalize().into_bytes());
    hex.truncate(MAC_HEX);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn every_button_round_trips_and_fits_discords_100_characters() {
        for id in [
            ButtonId::Link(1),
            ButtonId::NotThem(i32::MAX),
            ButtonId::Candidates(42),
            ButtonId::LinkCandidate {
                issue: i32::MAX,
                character: i32::MAX,
                discord_user: i32::MAX,
                report: None,
            },
            ButtonId::LinkCandidate {
                issue: i32::MAX,
                character: i32::MAX,
                discord_user: i32::MAX,
                report: Some(u64::MAX),
            },
        ] {
            let signed = id.sign(KEY);
            assert!(signed.len() <= 100, "{signed}");
            assert_eq!(ButtonId::verify(&signed, KEY), Some(id));
        }
    }

    #[test]
    fn altered_forged_and_foreign_ids_are_refused() {
        let signed = ButtonId::Link(7).sign(KEY);
        let (_, mac) = signed.rsplit_once('.').unwrap();
        for forged in [
            format!("sl.8.{mac}"),
            format!("sn.7.{mac}"),
            "sl.7".to_owned(),
            "sl.7.".to_owned(),
            format!("{signed}0"),
            "sl.7.0000000000000000".to_owned(),
            "something else".to_owned(),
            String::new(),
        ] {
            assert_eq!(ButtonId::verify(&forged, KEY), None, "{forged}");
        }
        assert_eq!(
            ButtonId::verify(&signed, b"another database's key, 32 bytes"),
            None
        );
    }
}
