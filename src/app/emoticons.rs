//! Emoticons: the classic text shortcuts, shown as small pictures drawn here as SVG. Only
//! the view changes: the stored and sent text stays exactly what was typed.

/// One emoticon: the shortcuts that make it (the first is what the picker inserts), its
/// name for screen readers and tooltips, and its picture (SVG markup, 20×20 view box).
#[derive(Debug, PartialEq, Eq)]
pub struct Emoticon {
    pub codes: &'static [&'static str],
    pub name: &'static str,
    pub svg: &'static str,
}

// Shared parts of the faces: a round yellow face with a darker rim.
macro_rules! face {
    ($($inner:expr),*) => {
        concat!(
            r##"<svg viewBox="0 0 20 20" width="19" height="19" aria-hidden="true"><circle cx="10" cy="10" r="9" fill="#ffd43b" stroke="#c98a00" stroke-width="1"/>"##,
            $($inner,)*
            "</svg>"
        )
    };
}

/// Every emoticon, in the picker's order.
pub const ALL: &[Emoticon] = &[
    Emoticon {
        codes: &[":)", ":-)"],
        name: "smile",
        svg: face!(
            r##"<circle cx="7" cy="8" r="1.3" fill="#4a3000"/><circle cx="13" cy="8" r="1.3" fill="#4a3000"/>"##,
            r##"<path d="M5.5 11.5q4.5 4.5 9 0" fill="none" stroke="#4a3000" stroke-width="1.4" stroke-linecap="round"/>"##
        ),
    },
    Emoticon {
        codes: &[":D", ":-D"],
        name: "big grin",
        svg: face!(
            r##"<circle cx="7" cy="7.5" r="1.3" fill="#4a3000"/><circle cx="13" cy="7.5" r="1.3" fill="#4a3000"/>"##,
            r##"<path d="M5 10.5h10q-1 5.5-5 5.5t-5-5.5z" fill="#7a1d00"/><path d="M6 10.5h8v1.6h-8z" fill="#fff"/>"##
        ),
    },
    Emoticon {
        codes: &[";)", ";-)"],
        name: "wink",
        svg: face!(
            r##"<path d="M5.5 8.2h3" stroke="#4a3000" stroke-width="1.4" stroke-linecap="round"/><circle cx="13" cy="8" r="1.3" fill="#4a3000"/>"##,
            r##"<path d="M5.5 11.5q4.5 4.5 9 0" fill="none" stroke="#4a3000" stroke-width="1.4" stroke-linecap="round"/>"##
        ),
    },
    Emoticon {
        codes: &[":(", ":-("],
        name: "sad",
        svg: face!(
            r##"<circle cx="7" cy="8" r="1.3" fill="#4a3000"/><circle cx="13" cy="8" r="1.3" fill="#4a3000"/>"##,
            r##"<path d="M6 14.5q4-3.5 8 0" fill="none" stroke="#4a3000" stroke-width="1.4" stroke-linecap="round"/>"##
        ),
    },
    Emoticon {
        codes: &[":P", ":-P"],
        name: "tongue out",
        svg: face!(
            r##"<circle cx="7" cy="8" r="1.3" fill="#4a3000"/><circle cx="13" cy="8" r="1.3" fill="#4a3000"/>"##,
            r##"<path d="M6 12h8" stroke="#4a3000" stroke-width="1.4" stroke-linecap="round"/><path d="M8.5 12h3.5v2.2a1.75 1.75 0 0 1-3.5 0z" fill="#e8546b"/>"##
        ),
    },
    Emoticon {
        codes: &[":O", ":-O"],
        name: "surprised",
        svg: face!(
            r##"<circle cx="7" cy="7.5" r="1.3" fill="#4a3000"/><circle cx="13" cy="7.5" r="1.3" fill="#4a3000"/>"##,
            r##"<ellipse cx="10" cy="13" rx="2.2" ry="2.6" fill="#7a1d00"/>"##
        ),
    },
    Emoticon {
        codes: &["(H)"],
        name: "cool",
        svg: face!(
            r##"<path d="M3.5 7h13v1.2l-1.2 2.3h-3.3l-1.2-2h-1.6l-1.2 2h-3.3l-1.2-2.3z" fill="#1d2a3a"/>"##,
            r##"<path d="M6 12.5q4 3.5 8 0" fill="none" stroke="#4a3000" stroke-width="1.4" stroke-linecap="round"/>"##
        ),
    },
    Emoticon {
        codes: &[":@"],
        name: "angry",
        svg: concat!(
            r##"<svg viewBox="0 0 20 20" width="19" height="19" aria-hidden="true"><circle cx="10" cy="10" r="9" fill="#ff7b5c" stroke="#b3361b" stroke-width="1"/>"##,
            r##"<path d="M5 6l3.5 1.5M15 6l-3.5 1.5" stroke="#4a1000" stroke-width="1.4" stroke-linecap="round"/><circle cx="7.2" cy="9" r="1.2" fill="#4a1000"/><circle cx="12.8" cy="9" r="1.2" fill="#4a1000"/>"##,
            r##"<path d="M6.5 14.5q3.5-2.5 7 0" fill="none" stroke="#4a1000" stroke-width="1.4" stroke-linecap="round"/></svg>"##
        ),
    },
    Emoticon {
        codes: &[":$", ":-$"],
        name: "embarrassed",
        svg: face!(
            r##"<circle cx="7" cy="8" r="1.3" fill="#4a3000"/><circle cx="13" cy="8" r="1.3" fill="#4a3000"/>"##,
            r##"<ellipse cx="5" cy="11.5" rx="2" ry="1.2" fill="#f08080" opacity=".8"/><ellipse cx="15" cy="11.5" rx="2" ry="1.2" fill="#f08080" opacity=".8"/>"##,
            r##"<path d="M8 13.5h4" stroke="#4a3000" stroke-width="1.4" stroke-linecap="round"/>"##
        ),
    },
    Emoticon {
        codes: &[":S", ":-S"],
        name: "confused",
        svg: face!(
            r##"<circle cx="7" cy="8" r="1.3" fill="#4a3000"/><circle cx="13" cy="8" r="1.3" fill="#4a3000"/>"##,
            r##"<path d="M5.5 13.5q1.5-2 3 0t3 0 3 0" fill="none" stroke="#4a3000" stroke-width="1.4" stroke-linecap="round"/>"##
        ),
    },
    Emoticon {
        codes: &[":'("],
        name: "crying",
        svg: face!(
            r##"<circle cx="7" cy="8" r="1.3" fill="#4a3000"/><circle cx="13" cy="8" r="1.3" fill="#4a3000"/>"##,
            r##"<path d="M6.3 10.2q-1.3 2.3 0 3t1.3-.8z" fill="#4aa8ff"/>"##,
            r##"<path d="M7 15q3-2.5 6 0" fill="none" stroke="#4a3000" stroke-width="1.4" stroke-linecap="round"/>"##
        ),
    },
    Emoticon {
        codes: &[":|", ":-|"],
        name: "disappointed",
        svg: face!(
            r##"<circle cx="7" cy="8" r="1.3" fill="#4a3000"/><circle cx="13" cy="8" r="1.3" fill="#4a3000"/>"##,
            r##"<path d="M6 13.2h8" stroke="#4a3000" stroke-width="1.4" stroke-linecap="round"/>"##
        ),
    },
    Emoticon {
        codes: &["(A)"],
        name: "angel",
        svg: r##"<svg viewBox="0 0 20 20" width="19" height="19" aria-hidden="true"><ellipse cx="10" cy="2.6" rx="5" ry="1.6" fill="none" stroke="#e6a817" stroke-width="1.3"/><circle cx="10" cy="11" r="8" fill="#ffd43b" stroke="#c98a00" stroke-width="1"/><circle cx="7.2" cy="9.5" r="1.2" fill="#4a3000"/><circle cx="12.8" cy="9.5" r="1.2" fill="#4a3000"/><path d="M6.5 13q3.5 3.5 7 0" fill="none" stroke="#4a3000" stroke-width="1.3" stroke-linecap="round"/></svg>"##,
    },
    Emoticon {
        codes: &["(6)"],
        name: "devil",
        svg: r##"<svg viewBox="0 0 20 20" width="19" height="19" aria-hidden="true"><path d="M3.2 6.5 2.5 1.8l4 2.8M16.8 6.5l.7-4.7-4 2.8" fill="#c0392b"/><circle cx="10" cy="11" r="8" fill="#d9412b" stroke="#8e2417" stroke-width="1"/><path d="M5.8 8.5l2.6 1.2M14.2 8.5l-2.6 1.2" stroke="#3b0a05" stroke-width="1.3" stroke-linecap="round"/><path d="M6 13q4 3.5 8 0" fill="none" stroke="#3b0a05" stroke-width="1.4" stroke-linecap="round"/></svg>"##,
    },
    Emoticon {
        codes: &["(K)"],
        name: "kiss",
        svg: r##"<svg viewBox="0 0 20 20" width="19" height="19" aria-hidden="true"><path d="M2.5 10q3.5-4.5 7.5-1.5 4-3 7.5 1.5-3.5 5-7.5 5t-7.5-5z" fill="#e63950" stroke="#9e1328" stroke-width="1"/><path d="M3.5 10.2q6.5 1.6 13 0" fill="none" stroke="#9e1328" stroke-width="1"/></svg>"##,
    },
    Emoticon {
        codes: &["(L)"],
        name: "heart",
        svg: r##"<svg viewBox="0 0 20 20" width="19" height="19" aria-hidden="true"><path d="M10 17.5 3 10.5a4.2 4.2 0 0 1 7-4.6 4.2 4.2 0 0 1 7 4.6z" fill="#e63950" stroke="#9e1328" stroke-width="1"/><path d="M5.5 8.5a2 2 0 0 1 2.5-1.5" stroke="#ffb3bf" stroke-width="1.2" fill="none" stroke-linecap="round"/></svg>"##,
    },
    Emoticon {
        codes: &["(U)"],
        name: "broken heart",
        svg: r##"<svg viewBox="0 0 20 20" width="19" height="19" aria-hidden="true"><path d="M9.3 17 3 10.5a4.2 4.2 0 0 1 6.3-4.9l1 2.4-1.6 2.4 1.6 2.2z" fill="#9b8d95" stroke="#5d4f57" stroke-width="1"/><path d="M10.7 17l6.3-6.5a4.2 4.2 0 0 0-6.3-4.9l.6 2.4-1.6 2.4 1.6 2.2z" fill="#9b8d95" stroke="#5d4f57" stroke-width="1"/></svg>"##,
    },
    Emoticon {
        codes: &["(Y)"],
        name: "thumbs up",
        svg: r##"<svg viewBox="0 0 20 20" width="19" height="19" aria-hidden="true"><path d="M3 9h3v8H3z" fill="#2a7fd4"/><path d="M6.5 9.2 10 3.5c1.2-.3 2 .6 1.7 1.9L11 8.5h4.6c1.2 0 1.9 1.1 1.5 2.2l-1.8 5.3c-.3.7-.9 1-1.6 1H6.5z" fill="#ffd43b" stroke="#c98a00" stroke-width="1"/></svg>"##,
    },
    Emoticon {
        codes: &["(N)"],
        name: "thumbs down",
        svg: r##"<svg viewBox="0 0 20 20" width="19" height="19" aria-hidden="true"><path d="M3 3h3v8H3z" fill="#2a7fd4"/><path d="M6.5 10.8 10 16.5c1.2.3 2-.6 1.7-1.9L11 11.5h4.6c1.2 0 1.9-1.1 1.5-2.2l-1.8-5.3c-.3-.7-.9-1-1.6-1H6.5z" fill="#ffd43b" stroke="#c98a00" stroke-width="1"/></svg>"##,
    },
    Emoticon {
        codes: &["(*)"],
        name: "star",
        svg: r##"<svg viewBox="0 0 20 20" width="19" height="19" aria-hidden="true"><path d="M10 1.8l2.5 5.3 5.8.7-4.3 4 1.1 5.7L10 14.7l-5.1 2.8L6 11.8l-4.3-4 5.8-.7z" fill="#ffd43b" stroke="#c98a00" stroke-width="1" stroke-linejoin="round"/></svg>"##,
    },
    Emoticon {
        codes: &["(F)"],
        name: "rose",
        svg: r##"<svg viewBox="0 0 20 20" width="19" height="19" aria-hidden="true"><path d="M10 10v8" stroke="#3fa535" stroke-width="1.6"/><path d="M10 14.5q-3-.5-4-3 3 0 4 2" fill="#3fa535"/><circle cx="10" cy="6.5" r="4.5" fill="#d9412b"/><path d="M8 5.5q2-2 4 0-1 2.5-2 2.5t-2-2.5z" fill="#a82a1b"/></svg>"##,
    },
    Emoticon {
        codes: &["(C)"],
        name: "coffee",
        svg: r##"<svg viewBox="0 0 20 20" width="19" height="19" aria-hidden="true"><path d="M7 2.5q-1 1.5 0 3M10 2q-1 1.5 0 3" stroke="#9aa5b1" stroke-width="1" fill="none"/><path d="M3.5 7h11v5.5a4 4 0 0 1-4 4h-3a4 4 0 0 1-4-4z" fill="#fff" stroke="#556579" stroke-width="1"/><path d="M14.5 8.5h1.2a2 2 0 0 1 0 4h-1.4" fill="none" stroke="#556579" stroke-width="1.2"/><path d="M4.5 8h9v1.5h-9z" fill="#7a4a21"/></svg>"##,
    },
    Emoticon {
        codes: &["(^)"],
        name: "cake",
        svg: r##"<svg viewBox="0 0 20 20" width="19" height="19" aria-hidden="true"><path d="M10 2.5q1.2 1.3 0 2.5-1.2-1.2 0-2.5z" fill="#ff9f1c"/><path d="M9.4 5h1.2v3.5H9.4z" fill="#4aa8ff"/><path d="M3 9h14v8H3z" fill="#f7d9b0" stroke="#b07a3c" stroke-width="1"/><path d="M3 11.5q1.75 1.5 3.5 0t3.5 0 3.5 0 3.5 0" fill="none" stroke="#e8546b" stroke-width="1.4"/></svg>"##,
    },
];

/// A part of a message as shown: plain text or an emoticon.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Emoticon(&'static Emoticon),
}

/// The emoticon whose shortcut starts `text`, if any (the longest one wins; letters match
/// in either case, so `(h)` and `:d` work as well as `(H)` and `:D`).
fn at_start(text: &str) -> Option<(&'static Emoticon, usize)> {
    ALL.iter()
        .flat_map(|e| e.codes.iter().map(move |c| (e, c.len(), *c)))
        .filter(|(_, len, code)| {
            text.get(..*len)
                .is_some_and(|head| head.eq_ignore_ascii_case(code))
        })
        .max_by_key(|(_, len, _)| *len)
        .map(|(e, len, _)| (e, len))
}

/// Splits a message into text and emoticons, in order. Emoticon shortcuts only start with
/// `:`, `;` or `(`, so everything else is skipped quickly.
pub fn split(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut plain = 0;
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let lead = rest.as_bytes()[0];
        if matches!(lead, b':' | b';' | b'(') {
            if let Some((e, len)) = at_start(rest) {
                if plain < i {
                    out.push(Piece::Text(&text[plain..i]));
                }
                out.push(Piece::Emoticon(e));
                i += len;
                plain = i;
                continue;
            }
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    if plain < text.len() {
        out.push(Piece::Text(&text[plain..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<String> {
        split(text)
            .into_iter()
            .map(|p| match p {
                Piece::Text(t) => format!("'{t}'"),
                Piece::Emoticon(e) => e.name.to_owned(),
            })
            .collect()
    }

    #[test]
    fn shortcuts_become_emoticons_and_the_rest_stays_text() {
        assert_eq!(
            names("Hi :) how are you? (Y)"),
            ["'Hi '", "smile", "' how are you? '", "thumbs up"]
        );
        assert_eq!(
            names(":-):D;)(L)(U)"),
            ["smile", "big grin", "wink", "heart", "broken heart"]
        );
        assert_eq!(
            names("(h) :p :d"),
            ["cool", "' '", "tongue out", "' '", "big grin"]
        );
        assert_eq!(names(":'( and :("), ["crying", "' and '", "sad"]);
        assert_eq!(
            names(":| (A) (6) (K) :-| (a) (k)"),
            [
                "disappointed",
                "' '",
                "angel",
                "' '",
                "devil",
                "' '",
                "kiss",
                "' '",
                "disappointed",
                "' '",
                "angel",
                "' '",
                "kiss"
            ]
        );
        assert_eq!(names("no emoticons here"), ["'no emoticons here'"]);
        assert_eq!(
            names("(unclosed and : alone ;"),
            ["'(unclosed and : alone ;'"]
        );
        assert_eq!(names("é:)ü"), ["'é'", "smile", "'ü'"]);
        assert!(split("").is_empty());
    }

    #[test]
    fn every_emoticon_has_a_name_a_picture_and_distinct_shortcuts() {
        let mut seen = std::collections::HashSet::new();
        for e in ALL {
            assert!(!e.name.is_empty());
            assert!(
                e.svg.starts_with("<svg") && e.svg.ends_with("</svg>"),
                "{}",
                e.name
            );
            for c in e.codes {
                assert!(seen.insert(c.to_ascii_uppercase()), "{c} twice");
                assert_eq!(names(c), [e.name], "{c}");
            }
        }
        // The ones the classic Messenger users remember.
        for c in [
            ":)", ":(", ";)", ":D", ":P", "(H)", "(L)", "(U)", "(Y)", "(N)",
        ] {
            assert!(ALL.iter().any(|e| e.codes.contains(&c)), "{c}");
        }
    }
}
