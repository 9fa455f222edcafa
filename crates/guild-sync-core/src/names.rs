//! Names: how character names, Discord names and realm names are compared. Pure string work;
//! nothing here knows about players or links.
//!
//! Every comparison starts from [`clean_name`]: Unicode NFKC (fullwidth `Ｎａｋｏｒ` is `Nakor`),
//! with invisible and bidirectional control characters removed, so a zero-width space or a
//! right-to-left override cannot make two names differ or look alike. Because anyone with a
//! guild role can choose their Discord name, [`disguise`] also says when a name only *looks*
//! like another: it needed that cleaning, or it mixes scripts (a Cyrillic `о` among Latin
//! letters), or it is written in another script than the name it is compared with
//! ([`foreign_script`]; TR39's resolved script sets from `unicode-security`). The matcher never
//! links on such a name.

use unicode_normalization::UnicodeNormalization;
use unicode_security::MixedScript;

/// Why a name may be a look-alike of the name it equals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disguise {
    /// Invisible or bidirectional control characters were removed to make it equal.
    InvisibleCharacters,
    /// Compatibility forms (fullwidth, ligatures, styled letters) were folded to make it equal.
    CompatibilityForms,
    /// Letters of several scripts in one name (`Gorvоrixdra` with a Cyrillic `о`).
    MixedScripts,
    /// Written in another script than the character name it is compared with.
    ForeignScript,
}

impl Disguise {
    pub fn as_str(self) -> &'static str {
        match self {
            Disguise::InvisibleCharacters => "invisible_characters",
            Disguise::CompatibilityForms => "compatibility_forms",
            Disguise::MixedScripts => "mixed_scripts",
            Disguise::ForeignScript => "foreign_script",
        }
    }
}

/// Characters that render as nothing or only steer the text direction: Unicode's
/// Default_Ignorable_Code_Point set (zero-width spaces and joiners, soft hyphen, variation
/// selectors, tags), the bidirectional controls, and every other control character.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// A name as it is compared: NFKC, without invisible or bidirectional control characters, trimmed.
pub fn clean_name(name: &str) -> String {
    // Most names are plain ASCII, which NFKC leaves alone: skip the normalizer for them (it is
    // most of the cost of indexing 50,000 Discord names).
    if name.is_ascii() && !name.bytes().any(|b| b.is_ascii_control()) {
        return name.trim().to_string();
    }
    let folded: String = name.nfkc().filter(|&c| !is_invisible(c)).collect();
    folded.trim().to_string()
}

/// How `name` disguises itself on its own (without looking at what it is compared with): the
/// first of invisible characters, compatibility forms, mixed scripts that applies.
pub fn disguise(name: &str) -> Option<Disguise> {
    if name.chars().any(is_invisible) {
        return Some(Disguise::InvisibleCharacters);
    }
    if name.is_ascii() {
        return None;
    }
    let cleaned: String = name.nfkc().collect();
    if cleaned != name.nfc().collect::<String>() {
        return Some(Disguise::CompatibilityForms);
    }
    if !cleaned.as_str().is_single_script() {
        return Some(Disguise::MixedScripts);
    }
    None
}

/// Whether `discord_name` is written in a script `character_name` does not use (an all-Cyrillic
/// `Тралл` against `Thrall`): equal comparison forms then come from transliteration, which is
/// exactly how a look-alike is made. Digits and punctuation belong to every script.
pub fn foreign_script(character_name: &str, discord_name: &str) -> bool {
    if discord_name.is_ascii() && character_name.is_ascii() {
        return false;
    }
    let mut set = clean_name(discord_name).as_str().resolve_script_set();
    set.intersect_with(clean_name(character_name).as_str().resolve_script_set());
    set.is_empty()
}

/// The comparison form of a character or Discord name: [`clean_name`], then every diacritic and
/// ligature reduced to ASCII (ñ→n, é→e, ö→o, ø→o, æ→ae, ß→ss), lowercased and trimmed.
/// Characters deunicode cannot transliterate are dropped rather than replaced by a placeholder,
/// so two unknown scripts never compare equal by accident.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    normalize_name_into(name, &mut out);
    out
}

/// [`normalize_name`] into `out` (cleared first), so a caller comparing many names reuses one
/// buffer instead of allocating a string per name (the planner looks at every present member).
pub fn normalize_name_into(name: &str, out: &mut String) {
    out.clear();
    if name.is_ascii() && !name.bytes().any(|b| b.is_ascii_control()) {
        // Plain ASCII (most names): NFKC and transliteration leave it alone, and without control
        // characters the only whitespace `str::trim` could remove is the space.
        out.push_str(name.trim_matches(' '));
        out.make_ascii_lowercase();
        return;
    }
    let cleaned = clean_name(name);
    let source = cleaned.as_str();
    for c in source.trim().chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else if let Some(ascii) = deunicode::deunicode_char(c) {
            out.extend(ascii.chars().map(|c| c.to_ascii_lowercase()));
        }
    }
    // Transliteration can yield spaces at either end: trim in place, as `str::trim` would.
    let end = out.trim_end().len();
    out.truncate(end);
    let start = out.len() - out.trim_start().len();
    if start > 0 {
        out.drain(..start);
    }
}

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
    fn normalize_name_strips_accents_ligatures_case_and_padding() {
        for (raw, normalized) in [
            ("Zatañña", "zatanna"),
            ("Ærthas", "aerthas"),
            ("  Thrall ", "thrall"),
            ("Jaína", "jaina"),
            ("Sylvanäs", "sylvanas"),
            ("Grøm", "grom"),
            ("Weiß", "weiss"),
            ("Œdipe", "oedipe"),
            ("Élune", "elune"),
            ("ÇAÑÖN", "canon"),
            ("bob", "bob"),
            ("", ""),
        ] {
            assert_eq!(normalize_name(raw), normalized, "{raw:?}");
        }
    }

    #[test]
    fn normalizing_into_a_reused_buffer_gives_the_same_names() {
        let mut buffer = String::from("left over from the last name");
        for (raw, normalized) in [
            ("  Thrall ", "thrall"),
            ("\tThrall\n", "thrall"),
            ("Jaína ", "jaina"),
            (" ÇAÑÖN", "canon"),
            ("", ""),
            ("   ", ""),
        ] {
            normalize_name_into(raw, &mut buffer);
            assert_eq!(buffer, normalized, "{raw:?}");
            assert_eq!(normalize_name(raw), normalized, "{raw:?}");
        }
    }

    #[test]
    fn invisible_characters_and_compatibility_forms_are_folded_before_comparing() {
        for (raw, normalized) in [
            ("Net\u{200B}rodooman", "netrodooman"),
            ("\u{202E}Nakor", "nakor"),
            ("Ｎａｋｏｒ", "nakor"),
            ("Na\u{00AD}kor\u{FEFF}", "nakor"),
        ] {
            assert_eq!(normalize_name(raw), normalized, "{raw:?}");
        }
    }

    #[test]
    fn look_alike_names_say_how_they_disguise_themselves() {
        assert_eq!(
            disguise("Net\u{200B}rodooman"),
            Some(Disguise::InvisibleCharacters)
        );
        assert_eq!(
            disguise("\u{202E}Nakor"),
            Some(Disguise::InvisibleCharacters)
        );
        assert_eq!(disguise("Ｎａｋｏｒ"), Some(Disguise::CompatibilityForms));
        // A Cyrillic о (U+043E) among Latin letters.
        assert_eq!(disguise("Gorv\u{043E}rixdra"), Some(Disguise::MixedScripts));
        for honest in [
            "Netrodooman",
            "NETRODOOMAN",
            "Zatañña",
            "Ærthas",
            "Gwyn / Blade",
            "íxsho",
        ] {
            assert_eq!(disguise(honest), None, "{honest}");
        }
        assert!(foreign_script("Trall", "Тралл"));
        assert!(!foreign_script("Zatañña", "zatanna"));
        assert!(!foreign_script("Тралл", "тралл"));
    }

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
