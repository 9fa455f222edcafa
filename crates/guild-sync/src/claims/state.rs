//! The OAuth `state` parameter: signed (HMAC-SHA256), expiring after [`STATE_SECONDS`],
//! single-use (its nonce is recorded in the database when it comes back, see
//! [`crate::db::claims::use_nonce`]) and bound to one browser (the MAC covers the value of a
//! cookie only that browser holds), so a link started in one browser cannot be finished in
//! another and a captured callback URL cannot be replayed.
//!
//! The PKCE verifier is derived from the same secret and the state's nonce, so nothing about a
//! login in progress is stored server-side and nothing secret rides in the browser.
//!
//! Format: `{purpose}.{issued unix seconds}.{nonce hex}.{mac hex}`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a started login may take, in seconds (issue 17: 10 minutes).
pub const STATE_SECONDS: i64 = 600;

/// What a login is for; part of the signed state, so a state issued for one cannot finish
/// another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A member's claim, Discord step.
    Claim,
    /// A member's claim, Battle.net step.
    Battlenet,
    /// An officer logging in to the console with Discord.
    Officer,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Claim => "claim",
            Purpose::Battlenet => "bnet",
            Purpose::Officer => "officer",
        }
    }

    fn parse(s: &str) -> Option<Purpose> {
        [Purpose::Claim, Purpose::Battlenet, Purpose::Officer]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// Why a state was refused. Each reads as the page the member sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error(
        "this login link is not valid here: it was changed, or it was started in another browser"
    )]
    Tampered,
    #[error("this login link has expired (they last 10 minutes); start again")]
    Expired,
    #[error("this login link was already used; start again")]
    Replayed,
}

/// A state that checked out: its nonce still has to be marked used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedState {
    pub purpose: Purpose,
    pub nonce: String,
}

/// Signs and checks states with one secret.
#[derive(Clone)]
pub struct StateSigner {
    secret: Vec<u8>,
}

impl std::fmt::Debug for StateSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateSigner(***)")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl StateSigner {
    pub fn new(secret: &[u8]) -> StateSigner {
        StateSigner {
            secret: secret.to_vec(),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        for part in parts {
            // Length-prefixed, so no two different part lists feed the same bytes.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// A fresh state for `purpose`, bound to the browser cookie value `binding`, issued at
    /// `issued` (unix seconds).
    pub fn issue(&self, purpose: Purpose, binding: &str, issued: i64) -> String {
        let mut nonce = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        let nonce = hex::encode(nonce);
        self.sign(purpose, binding, issued, &nonce)
    }

    /// The state with this exact content (tests forge expired ones with it).
    pub fn sign(&self, purpose: Purpose, binding: &str, issued: i64, nonce: &str) -> String {
        let head = format!("{}.{issued}.{nonce}", purpose.as_str());
        let mac = self.mac(&[
            b"guild-sync oauth state",
            head.as_bytes(),
            binding.as_bytes(),
        ]);
        format!("{head}.{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Check `state` against the browser's `binding` at `now` (unix seconds). The MAC is
    /// checked first and in constant time; only a genuine state can be "expired".
    pub fn verify(
        &self,
        state: &str,
        binding: &str,
        now: i64,
    ) -> Result<VerifiedState, StateError> {
        let (head, mac_hex) = state.rsplit_once('.').ok_or(StateError::Tampered)?;
        let presented = hex::decode(mac_hex).map_err(|_| StateError::Tampered)?;
        self.mac(&[
            b"guild-sync oauth state",
            head.as_bytes(),
            binding.as_bytes(),
        ])
        .verify_slice(&presented)
        .map_err(|_| StateError::Tampered)?;
        let mut fields = head.split('.');
        let purpose = fields
            .next()
            .and_then(Purpose::parse)
            .ok_or(StateError::Tampered)?;
        let issued: i64 = fields
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or(StateError::Tampered)?;
        let nonce = fields.next().ok_or(StateError::Tampered)?.to_string();
        if !(0..STATE_SECONDS).contains(&(now - issued)) {
            return Err(StateError::Expired);
        }
        Ok(VerifiedState { purpose, nonce })
    }

    /// The PKCE code verifier of the login whose state carries `nonce`: 64 hex characters
    /// (RFC 7636 allows 43–128 unreserved ones).
    pub fn pkce_verifier(&self, nonce: &str) -> String {
        let mac = self.mac(&[b"guild-sync pkce verifier", nonce.as_bytes()]);
        hex::encode(mac.finalize().into_bytes())
    }

    /// A MAC over `value` for the claim cookie (which carries the Discord identity between
    /// the two logins).
    pub fn cookie_mac(&self, value: &str) -> String {
        let mac = self.mac(&[b"guild-sync claim cookie", value.as_bytes()]);
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_state_checks_out_only_in_its_browser_unchanged_and_in_time() {
        let signer = StateSigner::new(b"0123456789abcdef0123456789abcdef");
        let state = signer.issue(Purpose::Claim, "browser-a", NOW);
        let ok = signer.verify(&state, "browser-a", NOW + 10).unwrap();
        assert_eq!(ok.purpose, Purpose::Claim);
        assert_eq!(ok.nonce.len(), 32);
        assert_eq!(
            signer.verify(&state, "browser-b", NOW + 10),
            Err(StateError::Tampered)
        );
        let tampered = state.replacen("claim", "officer", 1);
        assert_eq!(
            signer.verify(&tampered, "browser-a", NOW),
            Err(StateError::Tampered)
        );
        assert_eq!(
            signer.verify(&state, "browser-a", NOW + STATE_SECONDS),
            Err(StateError::Expired)
        );
        assert_eq!(
            signer.verify(&state, "browser-a", NOW - 5),
            Err(StateError::Expired),
            "a state from the future is not accepted either"
        );
        let other = StateSigner::new(b"another secret, another service!");
        assert_eq!(
            other.verify(&state, "browser-a", NOW),
            Err(StateError::Tampered)
        );
        for garbage in ["", ".", "claim.1.2.zz", "claim.x.y.00"] {
            assert_eq!(
                signer.verify(garbage, "browser-a", NOW),
                Err(StateError::Tampered)
            );
        }
    }

    #[test]
    fn the_pkce_verifier_is_a_valid_verifier_and_differs_per_nonce() {
        let signer = StateSigner::new(b"0123456789abcdef0123456789abcdef");
        let a = signer.pkce_verifier("n1");
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, signer.pkce_verifier("n2"));
        assert_eq!(a, signer.pkce_verifier("n1"));
    }
}
