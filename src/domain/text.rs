//! Rules for free text shown to other people (user, product and campaign names).

/// Whether `c` may appear in a displayed name: not a control character (Cc) and not a
/// bidirectional formatting character. Bidi controls (U+202A–U+202E embeddings and overrides,
/// U+2066–U+2069 isolates, U+200E/U+200F/U+061C marks) reorder the text around them when it
/// is displayed, so a name could make an order line, a log line or an admin page read
/// differently from what is stored ("Trojan Source").
pub fn is_displayable(c: char) -> bool {
    !c.is_control()
        && !matches!(c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether every character of `text` is [`is_displayable`].
pub fn is_displayable_text(text: &str) -> bool {
    text.chars().all(is_displayable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_controls_and_control_characters_are_not_displayable() {
        for bad in [
            "a\u{202E}b",
            "\u{2066}x\u{2069}",
            "x\u{200F}",
            "a\u{0}b",
            "tab\t",
        ] {
            assert!(!is_displayable_text(bad), "{bad:?}");
        }
        for good in [
            "Kim",
            "김철수",
            "مرحبا",
            "שלום",
            "Café ☕",
            "👨\u{200D}👩\u{200D}👧",
        ] {
            assert!(is_displayable_text(good), "{good:?}");
        }
    }
}
