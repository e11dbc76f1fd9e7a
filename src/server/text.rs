//! Unicode hygiene for everything users write that others see (docs/PROTOCOL.md, "Text"):
//!
//! - every text is stored in Normalization Form C, so that two spellings of one name are one;
//! - names (display names, contact group names, room titles) and personal messages refuse
//!   bidirectional controls (which can reverse what follows, `U+202E`) and hidden characters
//!   (zero-width spaces, word joiners, byte-order marks, soft hyphens, tags: the default-
//!   ignorable code points, except the joiners and variation selectors that emoji and some
//!   scripts need);
//! - message bodies lose the bidi embeddings, overrides and isolates (a message may quote
//!   right-to-left text; the marks `U+200E`/`U+200F` stay), and keep the rest as written;
//! - no text may be made only of invisible characters;
//! - a display name may not look like an AI contact's name or another user's username
//!   (compared by UTS #39 skeleton, so Cyrillic `а` counts as Latin `a`).

use crate::protocol::{one_line, Body, Invalid};
use unicode_normalization::{
    char::is_combining_mark, is_nfc_quick, IsNormalized, UnicodeNormalization,
};

/// Bidirectional formatting characters: the marks, embeddings, overrides and isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The ones that change the order of what follows (the marks do not).
fn is_bidi_reordering(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A default-ignorable code point (UTS #39 drops them from skeletons): invisible.
fn is_invisible(c: char) -> bool {
    let mut buf = [0u8; 4];
    let s: &str = c.encode_utf8(&mut buf);
    let none = unicode_security::skeleton(s).next().is_none();
    none
}

/// Invisible characters that names need: the joiners (emoji sequences, Indic and Arabic
/// scripts) and the emoji and text presentation selectors.
fn is_needed_joiner(c: char) -> bool {
    matches!(c, '\u{200C}' | '\u{200D}' | '\u{FE0E}' | '\u{FE0F}')
}

/// Whether nothing of `s` would show: only whitespace and invisible characters.
fn is_invisible_only(s: &str) -> bool {
    unicode_security::skeleton(s).all(char::is_whitespace)
}

fn nfc(s: &str) -> String {
    match is_nfc_quick(s.chars()) {
        IsNormalized::Yes => s.to_owned(),
        _ => s.nfc().collect(),
    }
}

/// A one-line name or personal message, clean (see the module's documentation).
pub fn line(raw: &str, what: &str, max: usize, allow_empty: bool) -> Result<String, Invalid> {
    let text = one_line(&nfc(raw), what, max, allow_empty)?;
    if text.chars().any(is_bidi_control) {
        return Err(Invalid(format!(
            "The {what} cannot contain right-to-left or left-to-right controls."
        )));
    }
    if let Some(c) = text
        .chars()
        .find(|c| is_invisible(*c) && !is_needed_joiner(*c))
    {
        return Err(Invalid(format!(
            "The {what} cannot contain invisible characters (U+{:04X}).",
            c as u32
        )));
    }
    if !text.is_empty() && is_invisible_only(&text) {
        return Err(Invalid(format!(
            "The {what} cannot be only invisible characters."
        )));
    }
    // A mark with nothing under it (a stray accent) is no name.
    if text.chars().next().is_some_and(is_combining_mark)
        || (!text.is_empty()
            && text
                .chars()
                .all(|c| is_combining_mark(c) || c.is_whitespace()))
    {
        return Err(Invalid(format!(
            "The {what} cannot begin with an accent or other combining mark."
        )));
    }
    Ok(text)
}

/// A message body, clean (see the module's documentation).
pub fn body(raw: &str) -> Result<Body, Invalid> {
    let mut text = nfc(raw);
    if text.chars().any(is_bidi_reordering) {
        text.retain(|c| !is_bidi_reordering(c));
    }
    // Tabs and line breaks are text; the other control characters (terminal escapes, bells,
    // NUL) show nothing in a conversation and can do harm where messages are printed.
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(Invalid(format!(
            "A message cannot contain control characters (U+{:04X}).",
            c as u32
        )));
    }
    let body = Body::parse(&text)?;
    if is_invisible_only(body.as_str()) {
        return Err(Invalid(
            "A message cannot be only invisible characters.".into(),
        ));
    }
    Ok(body)
}

/// The form two names are compared in, without case or whitespace: the skeleton (UTS #39)
/// of the name, lower-cased, and its skeleton again. The first skeleton comes before
/// lower-casing so that a capital `I` is the `l` it passes for (lower-cased first it would be
/// an `i`); the second, after it, so that `M` and `m` meet (`m` looks like `rn`).
pub fn look_alike_key(s: &str) -> String {
    let once: String = unicode_security::skeleton(s)
        .flat_map(char::to_lowercase)
        .collect();
    unicode_security::skeleton(&once)
        .flat_map(char::to_lowercase)
        .filter(|c| !c.is_whitespace())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_direction_controls_hidden_and_invisible_only_text() {
        let name = |s: &str| line(s, "display name", 64, false);
        assert_eq!(name("Zoë").as_deref(), Ok("Zoë"));
        // Decomposed (e + combining diaeresis) is stored composed.
        assert_eq!(name("Zoe\u{0308}").as_deref(), Ok("Zoë"));
        assert!(
            name("evil\u{202E}gnp.exe").is_err(),
            "right-to-left override"
        );
        assert!(name("a\u{2067}b\u{2069}").is_err(), "an isolate");
        assert!(name("Bo\u{200B}b").is_err(), "zero-width space");
        assert!(name("\u{FEFF}Bob").is_err(), "byte-order mark");
        assert!(name("\u{3164}").is_err(), "Hangul filler only");
        assert!(name("\u{200D}\u{200C}").is_err(), "joiners only");
        assert!(name("\u{0301}\u{0301}").is_err(), "marks only");
        assert!(name("\u{0301}Bob").is_err(), "a mark with nothing under it");
        // Emoji sequences and scripts that need joiners keep them.
        assert!(name("Family 👨\u{200D}👩\u{200D}👧").is_ok());
        assert!(name("क्\u{200D}ष").is_ok());
        assert!(name("Love ❤\u{FE0F}").is_ok());
        // Personal messages may be empty, but not invisible.
        let pm = |s: &str| line(s, "personal message", 128, true);
        assert_eq!(pm("").as_deref(), Ok(""));
        assert!(pm("\u{200B}\u{200B}").is_err());
    }

    #[test]
    fn bodies_lose_reordering_controls_and_cannot_be_invisible() {
        assert_eq!(
            body("pay \u{202E}321\u{202C} now").map(Body::into_inner),
            Ok("pay 321 now".into())
        );
        // Marks stay; quoted right-to-left text is left as written.
        assert_eq!(
            body("שלום \u{200F}world").map(Body::into_inner),
            Ok("שלום \u{200F}world".into())
        );
        assert!(body("\u{200B}").is_err());
        assert!(body("\u{FEFF}\u{200B} \u{2060}").is_err());
        assert!(body("\u{202E}").is_err(), "nothing left once stripped");
        assert_eq!(
            body("cafe\u{0301}").map(Body::into_inner),
            Ok("café".into())
        );
        // Control characters other than tabs and line breaks are refused, with the first.
        assert_eq!(
            body("\u{1}\u{2}").map_err(|e| e.0),
            Err("A message cannot contain control characters (U+0001).".into())
        );
        assert!(body("\u{1b}[31mred\u{7}").is_err(), "a terminal escape");
        assert!(body("a\u{0}b").is_err());
        assert!(body("x\u{85}y").is_err(), "a C1 control");
        assert_eq!(
            body("one\ttwo\r\nthree").map(Body::into_inner),
            Ok("one\ttwo\r\nthree".into())
        );
    }

    #[test]
    fn look_alikes_share_a_key() {
        // Cyrillic а and е, and a different case.
        assert_eq!(look_alike_key("Аlеx"), look_alike_key("alex"));
        assert_eq!(look_alike_key("  Mia "), look_alike_key("mia"));
        assert_eq!(look_alike_key("Ask  Ada"), look_alike_key("askada"));
        // A capital I passes for an l.
        assert_eq!(
            look_alike_key("DiaI-Up Dave"),
            look_alike_key("Dial-Up Dave")
        );
        assert_eq!(look_alike_key("walkaIice"), look_alike_key("walkalice"));
        assert_ne!(look_alike_key("mia"), look_alike_key("max"));
    }
}
