//! Untrusted text at the parse boundary: every name, note or nick that enters guild-sync from an
//! addon file, an upload body or Discord passes through [`clean`] (or [`clean_bounded`]) once,
//! where it is read, so nothing downstream has to care.
//!
//! Why drop control characters rather than refuse the record: one officer's stray NUL in a note,
//! or one Discord member's nick with an ANSI escape, must not cost the whole guild its sync.
//! PostgreSQL refuses U+0000 in `text` and `jsonb` outright, which is how a single NUL used to
//! fail (or half-apply) a whole batch; the other C0 controls break terminal output and split the
//! one-line-per-issue reports. Tab is kept: it is harmless and some notes use it as a separator;
//! a line break becomes a space, so the words either side stay apart.
//! DEL and the C1 block (U+0080..U+009F, which holds the 8-bit CSI a terminal may obey) go too.

/// Whether `c` is dropped by [`clean`]: C0 controls except tab, DEL, and C1 controls.
pub fn is_dropped_control(c: char) -> bool {
    (c.is_control() && c != '\t') || c == '\u{7F}'
}

/// `text` without the control characters [`is_dropped_control`] names, except that a line
/// break becomes a space (`\r\n` one space): "line one\nline two" must not read "line oneline
/// two".
pub fn clean(text: &str) -> String {
    if !text.chars().any(is_dropped_control) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\r' | '\n' => out.push(' '),
            c if is_dropped_control(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// [`clean`], then cut to at most `max` characters. For text that cannot be refused (a Discord
/// member is who they are), where a bound still has to hold.
pub fn clean_bounded(text: &str, max: usize) -> String {
    let cleaned = clean(text);
    match cleaned.char_indices().nth(max) {
        Some((cut, _)) => cleaned[..cut].to_owned(),
        None => cleaned,
    }
}

/// `text` as one line for a terminal or a report: line breaks and tabs become spaces (a newline
/// in a name must not split one issue into several lines), ANSI escape sequences are removed
/// whole (`ESC [ … m`), and every other control character is dropped.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            '\u{1b}' => {
                // A CSI sequence runs from `ESC [` to its final byte in `@`..=`~`.
                if chars.next_if_eq(&'[').is_some() {
                    for next in chars.by_ref() {
                        if ('@'..='~').contains(&next) {
                            break;
                        }
                    }
                }
            }
            c if is_dropped_control(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// Break the links Discord would make of a name: `https://x` stays readable but is no longer
/// clickable (a zero-width space after the colon), so a member cannot put a link in front of
/// officers under their own name.
pub fn unlinked(text: &str) -> String {
    text.replace("://", ":\u{200B}//")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nul_escape_bell_and_line_breaks_are_dropped_and_tab_is_kept() {
        let cases = [
            ("Tro\0g", "Trog"),
            ("\u{1b}[31mred\u{1b}[0m", "[31mred[0m"),
            ("bell\u{7}", "bell"),
            ("two\nlines\r\nthree\r", "two lines three "),
            ("tab\there", "tab\there"),
            ("del\u{7f}", "del"),
            ("c1\u{9b}2J", "c12J"),
            ("Zoë ✓", "Zoë ✓"),
        ];
        for (input, expected) in cases {
            assert_eq!(clean(input), expected, "{input:?}");
        }
    }

    #[test]
    fn one_line_removes_escape_sequences_and_joins_lines() {
        assert_eq!(one_line("\u{1b}[31;1mred\u{1b}[0m\u{7}"), "red");
        assert_eq!(one_line("Two\nLines\r\n"), "Two Lines  ");
        assert_eq!(one_line("a\u{1b}b\0c"), "abc");
        assert_eq!(one_line("unfinished \u{1b}[31"), "unfinished ");
    }

    #[test]
    fn links_are_broken_but_readable() {
        let shown = unlinked("see https://evil.example/x and http://a");
        assert!(!shown.contains("://"), "{shown}");
        assert_eq!(
            shown.replace('\u{200B}', ""),
            "see https://evil.example/x and http://a"
        );
    }

    #[test]
    fn clean_bounded_cuts_on_characters_not_bytes() {
        assert_eq!(clean_bounded("ééééé", 3), "ééé");
        assert_eq!(clean_bounded("a\0b", 5), "ab");
        assert_eq!(clean_bounded("", 3), "");
    }

    proptest! {
        #[test]
        fn cleaned_text_has_no_dropped_control_and_cleaning_is_idempotent(s in any::<String>()) {
            let once = clean(&s);
            prop_assert!(!once.chars().any(is_dropped_control));
            prop_assert_eq!(clean(&once), once.clone());
            prop_assert!(clean_bounded(&s, 10).chars().count() <= 10);
        }
    }
}
