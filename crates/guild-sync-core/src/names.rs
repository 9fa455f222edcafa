//! Names: how character names, Discord names and realm names are compared.

/// A realm's comparison key: lowercase ASCII alphanumerics only. In-game realm names drop spaces
/// and apostrophes ("BleedingHollow", "Senjin") while slugs use hyphens ("bleeding-hollow",
/// "senjin"), so both reduce to the same key.
pub fn realm_key(realm: &str) -> String {
    deunicode::deunicode(realm)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_game_realm_names_and_slugs_share_a_key() {
        for (in_game, slug) in [
            ("BleedingHollow", "bleeding-hollow"),
            ("Senjin", "senjin"),
            ("Sen'jin", "senjin"),
            ("AzjolNerub", "azjolnerub"),
            ("Aggra(Português)", "aggra-portugues"),
        ] {
            assert_eq!(realm_key(in_game), realm_key(slug), "{in_game} vs {slug}");
        }
        assert_ne!(realm_key("Stormrage"), realm_key("Area52"));
    }
}
