//! Values parsed at the edge ("parse, don't validate"): a message body, a client id, a
//! username, a new password. Each can only be built by its `parse`, which says why not.

use super::{MAX_BODY_CHARS, MAX_CLIENT_ID_LEN};
use std::fmt;

/// Why a value from the wire was refused. The message is shown to users as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// A message body: not blank, at most [`MAX_BODY_CHARS`] characters, no NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body(String);

impl Body {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.trim().is_empty() {
            return Err(invalid("A message cannot be empty."));
        }
        let chars = raw.chars().count();
        if chars > MAX_BODY_CHARS {
            return Err(invalid(format!(
                "A message can be at most {MAX_BODY_CHARS} characters; this one has {chars}."
            )));
        }
        if raw.contains('\0') {
            return Err(invalid("A message cannot contain NUL characters."));
        }
        Ok(Self(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A client-chosen message id: 1 to [`MAX_CLIENT_ID_LEN`] characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let ok_len = !raw.is_empty() && raw.len() <= MAX_CLIENT_ID_LEN;
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok_len && ok_chars {
            Ok(Self(raw.to_owned()))
        } else {
            Err(invalid(format!(
                "A client id is 1 to {MAX_CLIENT_ID_LEN} characters of letters, digits, '_' and '-'."
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A trimmed single line of text of at most `max` characters (empty only if `allow_empty`):
/// display names, personal messages, group names. `what` names it in the refusal.
pub fn one_line(raw: &str, what: &str, max: usize, allow_empty: bool) -> Result<String, Invalid> {
    let text = raw.trim();
    if text.is_empty() && !allow_empty {
        return Err(invalid(format!("The {what} cannot be empty.")));
    }
    if text.chars().count() > max {
        return Err(invalid(format!(
            "The {what} can be at most {max} characters."
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(format!(
            "The {what} must be a single line of text."
        )));
    }
    Ok(text.to_owned())
}

/// Guest usernames start with this; real usernames cannot contain `~`, so the two never collide.
pub const GUEST_PREFIX: &str = "guest~";

/// A registered username: 3 to 24 characters, letters, digits, `_` and `.`, starting with a
/// letter. Compared without regard to case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const MIN: usize = 3;
    pub const MAX: usize = 24;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = raw.trim();
        let len = name.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&len) {
            return Err(invalid(format!(
                "A username is {} to {} characters long.",
                Self::MIN,
                Self::MAX
            )));
        }
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(invalid("A username starts with a letter."));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '.'))
        {
            return Err(invalid(format!(
                "A username may use letters, digits, '_' and '.', not {bad:?}."
            )));
        }
        Ok(Self(name.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new password: 8 to 128 characters, not only spaces.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

impl NewPassword {
    pub const MIN: usize = 8;
    pub const MAX: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let len = raw.chars().count();
        if len < Self::MIN {
            return Err(invalid(format!(
                "A password needs at least {} characters.",
                Self::MIN
            )));
        }
        if len > Self::MAX {
            return Err(invalid(format!(
                "A password can be at most {} characters.",
                Self::MAX
            )));
        }
        if raw.trim().is_empty() {
            return Err(invalid("A password cannot be only spaces."));
        }
        Ok(Self(raw.to_owned()))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(..)")
    }
}

/// A password as it was typed, on its way to be checked (a sign-in) or parsed into a
/// [`NewPassword`] (a sign-up). It is the wire's: a form field or JSON string as it is. Its
/// `Debug` never shows it, so no log line or panic message can.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Password {
    fn from(raw: String) -> Self {
        Self(raw)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let typed = Password::from("hunter2 secret".to_owned());
        assert_eq!(format!("{typed:?}"), "Password(..)");
        assert_eq!(typed.expose(), "hunter2 secret");
        let json = serde_json::to_string(&typed).expect("serialise");
        assert_eq!(json, "\"hunter2 secret\"");
        let back: Password = serde_json::from_str(&json).expect("read");
        assert_eq!(back, typed);
        let parsed = NewPassword::parse("hunter2 secret").expect("valid");
        assert_eq!(format!("{parsed:?}"), "NewPassword(..)");
    }

    #[test]
    fn a_body_of_exactly_the_limit_is_accepted_and_one_more_is_refused() {
        let max = "é".repeat(MAX_BODY_CHARS);
        assert!(Body::parse(&max).is_ok());
        let over = format!("{max}x");
        let err = Body::parse(&over).unwrap_err();
        assert!(err.0.contains("2049"), "{err}");
    }

    #[test]
    fn blank_bodies_are_refused() {
        for raw in ["", "   ", "\n\t"] {
            assert!(Body::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn client_ids_allow_only_the_documented_alphabet() {
        assert!(ClientId::parse("a-Z_09").is_ok());
        assert!(ClientId::parse(&"x".repeat(MAX_CLIENT_ID_LEN)).is_ok());
        for bad in ["", "a b", "ü", "a/b", &"x".repeat(MAX_CLIENT_ID_LEN + 1)] {
            assert!(ClientId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn usernames_follow_the_rules_and_say_why_not() {
        assert_eq!(
            Username::parse("  alice.b_2 ").unwrap().as_str(),
            "alice.b_2"
        );
        assert!(Username::parse("al").unwrap_err().0.contains("3 to 24"));
        assert!(Username::parse("2pac")
            .unwrap_err()
            .0
            .contains("starts with a letter"));
        assert!(Username::parse("bob smith").unwrap_err().0.contains("' '"));
        // Guest names can never be taken by a real account.
        assert!(Username::parse(&format!("{GUEST_PREFIX}abcd")).is_err());
    }

    #[test]
    fn one_line_texts_are_trimmed_bounded_and_single_lines() {
        assert_eq!(one_line("  Ann ", "name", 8, false).unwrap(), "Ann");
        assert!(one_line("   ", "name", 8, false).is_err());
        assert_eq!(one_line("", "message", 8, true).unwrap(), "");
        assert!(one_line("123456789", "name", 8, false)
            .unwrap_err()
            .0
            .contains("at most 8"));
        assert!(one_line("a\nb", "name", 8, false)
            .unwrap_err()
            .0
            .contains("single line"));
    }

    #[test]
    fn passwords_have_bounds_and_never_print() {
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse("        ").is_err());
        let p = NewPassword::parse("correct horse").unwrap();
        assert_eq!(format!("{p:?}"), "NewPassword(..)");
    }
}
