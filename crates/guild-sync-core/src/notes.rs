//! Note parsing: the Discord hints and alt hints officers and players write into in-game guild
//! and officer notes. Pure text work: it returns the hints as written (trimmed of punctuation),
//! never decides who they refer to — that is the matcher's job.
//!
//! Recognised forms (keywords case-insensitive):
//! - Discord: `Discord: x`, `DC: x`, `disc: x` (the colon may touch either word) and `@x`
//!   (the `@` must start a word, so e-mail addresses are not hints).
//! - Alts: `alt of X`, `alt for X`, `X's alt` (straight or curly apostrophe), `Main: X`.
//!
//! A hint is one word: WoW character names are one word and Discord usernames have no spaces, so
//! reading further would only add wrong words. Trailing punctuation is dropped (`Discord: bob.`
//! → `bob`), a legacy discriminator is dropped (`bob#1234` → `bob`), and hints of one character
//! are ignored (too weak to identify anybody).

/// The keywords that introduce a Discord hint when followed by a colon.
const DISCORD_KEYWORDS: [&str; 3] = ["discord", "dc", "disc"];

/// Discord's mass mentions: `@everyone` and `@here` in a note are a ping pasted from Discord,
/// never a member's name, so they are not hints (a member *named* `everyone` must not be linked
/// by them).
const MASS_MENTIONS: [&str; 2] = ["everyone", "here"];

/// Shortest hint, in characters, that is worth matching.
const MIN_HINT_CHARS: usize = 2;

/// Discord names hinted at in a note, in order of appearance, without duplicates.
pub fn discord_hints(note: &str) -> Vec<String> {
    let words: Vec<&str> = note.split_whitespace().collect();
    let mut hints = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let value = match word.strip_prefix('@') {
            Some(rest) => Some(rest),
            None => {
                let bare = word.trim_start_matches(|c: char| !c.is_alphanumeric());
                keyword_value(bare, &words[i + 1..], &DISCORD_KEYWORDS)
            }
        };
        if let Some(value) = value.map(strip_discriminator)
            && !MASS_MENTIONS
                .iter()
                .any(|m| clean(value).eq_ignore_ascii_case(m))
        {
            push_hint(&mut hints, value);
        }
    }
    hints
}

/// Character names a note says this character is an alt of (or whose main it names), in order
/// of appearance, without duplicates.
pub fn alt_hints(note: &str) -> Vec<String> {
    let words: Vec<&str> = note.split_whitespace().collect();
    let mut hints = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let bare = word.trim_start_matches(|c: char| !c.is_alphanumeric());
        let next = words.get(i + 1).map(|w| clean(w).to_lowercase());
        if bare.eq_ignore_ascii_case("alt")
            && matches!(next.as_deref(), Some("of" | "for"))
            && let Some(name) = words.get(i + 2)
        {
            push_hint(&mut hints, name);
        } else if let Some(value) = keyword_value(bare, &words[i + 1..], &["main"]) {
            push_hint(&mut hints, value);
        } else if next.as_deref() == Some("alt") {
            let word = clean(bare);
            let owner = word
                .strip_suffix("'s")
                .or_else(|| word.strip_suffix("’s"))
                .or_else(|| word.strip_suffix("'S"))
                .or_else(|| word.strip_suffix("’S"));
            if let Some(owner) = owner {
                push_hint(&mut hints, owner);
            }
        }
    }
    hints
}

/// When `word` is `keyword:` / `keyword:value` (or `keyword` followed by a lone `:`), the value:
/// the rest of the word or the next word.
fn keyword_value<'a>(word: &'a str, following: &[&'a str], keywords: &[&str]) -> Option<&'a str> {
    let (head, rest) = match word.split_once(':') {
        Some((head, rest)) => (head, Some(rest)),
        None => (word, None),
    };
    if !keywords.iter().any(|k| head.eq_ignore_ascii_case(k)) {
        return None;
    }
    match rest {
        Some(rest) if !rest.is_empty() => Some(rest),
        Some(_) => following.first().copied(),
        // `Discord : bob`
        None => match following {
            [":", value, ..] => Some(value),
            [colon_value, ..] => colon_value.strip_prefix(':').filter(|v| !v.is_empty()),
            [] => None,
        },
    }
}

/// `bob#1234` → `bob`: Discord retired discriminators, but old notes still carry them.
fn strip_discriminator(word: &str) -> &str {
    let word = clean(word);
    match word.rsplit_once('#') {
        Some((name, tag)) if !tag.is_empty() && tag.chars().all(|c| c.is_ascii_digit()) => name,
        _ => word,
    }
}

/// The word without surrounding punctuation (`_` and `.` inside a name are kept; Discord
/// usernames use them).
fn clean(word: &str) -> &str {
    word.trim_start_matches(|c: char| !c.is_alphanumeric() && c != '_')
        .trim_end_matches(|c: char| !c.is_alphanumeric() && c != '_')
}

fn push_hint(hints: &mut Vec<String>, raw: &str) {
    let hint = clean(raw);
    if hint.chars().count() < MIN_HINT_CHARS {
        return;
    }
    if !hints.iter().any(|h| h == hint) {
        hints.push(hint.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everyone_and_here_are_never_hints() {
        for note in [
            "Discord: @everyone",
            "@everyone",
            "@here raid tonight",
            "DC: everyone",
            "disc: HERE!",
            "@Everyone",
        ] {
            assert!(
                discord_hints(note).is_empty(),
                "{note}: {:?}",
                discord_hints(note)
            );
        }
        assert_eq!(discord_hints("@everyone Discord: trog"), vec!["trog"]);
        assert_eq!(discord_hints("@heresy"), vec!["heresy"]);
    }

    #[test]
    fn every_discord_hint_pattern_is_recognised() {
        let cases: &[(&str, &[&str])] = &[
            ("Discord: bob", &["bob"]),
            ("discord:bob", &["bob"]),
            ("DISCORD : bob", &["bob"]),
            ("Discord :bob", &["bob"]),
            ("DC: Zatañña", &["Zatañña"]),
            ("dc:bob_the.tank", &["bob_the.tank"]),
            ("disc: bob", &["bob"]),
            ("Disc:bob", &["bob"]),
            ("@bob", &["bob"]),
            ("ask @Bob_99 for invites", &["Bob_99"]),
            ("Discord: bob.", &["bob"]),
            ("(Discord: bob)", &["bob"]),
            ("Discord: bob, tank", &["bob"]),
            ("Discord: bob#1234", &["bob"]),
            ("Discord: bob; @carl!", &["bob", "carl"]),
            ("Discord: bob @bob", &["bob"]),
            ("main tank, Discord: Ærthas", &["Ærthas"]),
        ];
        for (note, expected) in cases {
            assert_eq!(discord_hints(note), *expected, "{note:?}");
        }
    }

    #[test]
    fn text_that_only_resembles_a_discord_hint_is_not_one() {
        for note in [
            "",
            "raider",
            "mail me at bob@example.com",
            "discord bob",
            "dc bob",
            "discord:",
            "Discord: x",
            "@x",
            "@",
            "discordant: bob",
            "disco: bob",
            "Discord: !!",
        ] {
            assert_eq!(discord_hints(note), Vec::<String>::new(), "{note:?}");
        }
    }

    #[test]
    fn every_alt_hint_pattern_is_recognised() {
        let cases: &[(&str, &[&str])] = &[
            ("alt of Thrall", &["Thrall"]),
            ("Alt Of thrall.", &["thrall"]),
            ("alt for Jaina", &["Jaina"]),
            ("ALT FOR Jaina!", &["Jaina"]),
            ("Thrall's alt", &["Thrall"]),
            ("Thrall’s alt", &["Thrall"]),
            ("thrall's ALT.", &["thrall"]),
            ("Main: Thrall", &["Thrall"]),
            ("main:Thrall", &["Thrall"]),
            ("MAIN : Thrall", &["Thrall"]),
            ("healer, alt of Zatañña (ask)", &["Zatañña"]),
            ("(alt of Ærthas)", &["Ærthas"]),
            ("alt of Thrall; Main: Thrall", &["Thrall"]),
            ("Main: Jaina, Thrall's alt", &["Jaina", "Thrall"]),
        ];
        for (note, expected) in cases {
            assert_eq!(alt_hints(note), *expected, "{note:?}");
        }
    }

    #[test]
    fn text_that_only_resembles_an_alt_hint_is_not_one() {
        for note in [
            "",
            "alt",
            "alt of",
            "alt of X",
            "X's alt",
            "main tank",
            "Main:",
            "alternate of Thrall",
            "Thrall alt",
            "Thralls alt",
            "remains: Thrall",
        ] {
            assert_eq!(alt_hints(note), Vec::<String>::new(), "{note:?}");
        }
    }

    #[test]
    fn discord_and_alt_hints_are_read_independently_from_one_note() {
        let note = "Discord: bob | alt of Thrall";
        assert_eq!(discord_hints(note), ["bob"]);
        assert_eq!(alt_hints(note), ["Thrall"]);
    }
}
