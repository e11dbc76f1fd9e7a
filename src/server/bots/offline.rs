//! The offline persona engine: answers in character with no model and no network. It reads
//! what was said (a greeting, a question, a mood from words or emoticons, the persona's
//! favourite topics), picks lines of the persona for it, and never repeats its previous
//! answer word for word.

use super::personas::{Lines, Persona};
use rand::{seq::SliceRandom, Rng};

/// What a message is about, as far as the engine can tell.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reading {
    pub greeting: bool,
    pub question: bool,
    pub happy: bool,
    pub sad: bool,
    /// Index of the persona's topic the message touches, if any.
    pub topic: Option<usize>,
}

const GREETINGS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "hiya",
    "heya",
    "yo",
    "sup",
    "howdy",
    "hallo",
    "morning",
    "evening",
    "hai",
    "greetings",
];
const HAPPY: &[&str] = &[
    ":)", ":-)", ":d", ":-d", ";)", ";-)", "(y)", "(h)", "(l)", "^_^", "lol", "haha", "yay",
    "great", "awesome", "cool", "love",
];
const SAD: &[&str] = &[
    ":(", ":-(", ":'(", "(n)", "(u)", "sad", "upset", "awful", "terrible", "bad day", "crying",
    "lonely", "tired",
];
const QUESTION_WORDS: &[&str] = &[
    "what", "why", "how", "when", "where", "who", "which", "can", "could", "do", "does", "is",
    "are", "should", "would", "will",
];

/// Reads a message for the persona `p`.
pub fn read(p: &Persona, text: &str) -> Reading {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .collect();
    let has_word = |list: &[&str]| words.iter().any(|w| list.contains(w));
    let has_piece = |list: &[&str]| list.iter().any(|piece| lower.contains(piece));
    Reading {
        greeting: words.first().is_some_and(|w| GREETINGS.contains(w)),
        question: lower.contains('?') || words.first().is_some_and(|w| QUESTION_WORDS.contains(w)),
        happy: has_piece(HAPPY),
        sad: has_piece(SAD),
        topic: p.topics.iter().position(|t| has_word(t.words)),
    }
}

/// Picks a line, avoiding `avoid` (the previous answer) when there is any other choice.
fn pick(lines: Lines, avoid: Option<&str>, rng: &mut impl Rng) -> &'static str {
    let fresh: Vec<&&str> = lines
        .iter()
        .filter(|l| avoid.is_none_or(|a| !a.contains(**l)))
        .collect();
    match fresh.choose(rng) {
        Some(l) => l,
        None => lines.choose(rng).copied().unwrap_or(""),
    }
}

/// An answer of `p` to `text`; `previous` is the persona's last answer in this
/// conversation, which it will not repeat.
pub fn answer(p: &Persona, text: &str, previous: Option<&str>, rng: &mut impl Rng) -> String {
    let r = read(p, text);
    let mut parts: Vec<&str> = Vec::with_capacity(2);
    if r.greeting {
        parts.push(pick(p.greetings, previous, rng));
    }
    // What the message is about comes next: a mood first, then a topic, then a question.
    let body = if r.sad {
        Some(p.sad)
    } else if let Some(t) = r.topic {
        Some(p.topics[t].lines)
    } else if r.question {
        Some(p.questions)
    } else if r.happy {
        Some(p.happy)
    } else if r.greeting {
        None
    } else {
        Some(p.chatter)
    };
    if let Some(lines) = body {
        parts.push(pick(lines, previous, rng));
    }
    let joined = parts.join(" ");
    if previous == Some(joined.as_str()) {
        // Everything fitting was said last time: say something else in character.
        return pick(p.chatter, previous, rng).to_owned();
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::bots::personas::{by_handle, ALL};
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn it_reads_greetings_questions_moods_and_topics() {
        let tina = by_handle("tina_pet").unwrap();
        let r = read(tina, "Hi Tina! are you hungry?");
        assert!(r.greeting && r.question);
        assert_eq!(r.topic, Some(0), "food is Tina's first topic");
        assert!(read(tina, "today was a bad day :(").sad);
        assert!(read(tina, "that is so cool (Y)").happy);
        assert_eq!(read(tina, "the weather"), Reading::default());
        // "this" is not "hi": greetings are whole words at the start.
        assert!(!read(tina, "this is it").greeting);
    }

    #[test]
    fn answers_are_in_character_and_fit_what_was_said() {
        let mut rng = StdRng::seed_from_u64(7);
        for p in ALL {
            let hello = answer(p, "hello!", None, &mut rng);
            assert!(
                p.greetings.iter().any(|g| hello.contains(g)),
                "{}: {hello}",
                p.handle
            );
            let sad = answer(p, "I feel sad today :(", None, &mut rng);
            assert!(p.sad.contains(&sad.as_str()), "{}: {sad}", p.handle);
            let word = p.topics[0].words[0];
            let topical = answer(p, &format!("let's talk about {word}"), None, &mut rng);
            assert!(
                p.topics[0].lines.contains(&topical.as_str()),
                "{}: {topical}",
                p.handle
            );
            let asked = answer(p, "where do you live?", None, &mut rng);
            assert!(
                p.questions.contains(&asked.as_str()),
                "{}: {asked}",
                p.handle
            );
        }
    }

    #[test]
    fn it_does_not_say_the_same_thing_twice_in_a_row() {
        let mut rng = StdRng::seed_from_u64(1);
        let dave = by_handle("dialup_dave").unwrap();
        let mut previous: Option<String> = None;
        for _ in 0..30 {
            let next = answer(dave, "hmm", previous.as_deref(), &mut rng);
            assert_ne!(Some(&next), previous.as_ref());
            previous = Some(next);
        }
    }
}
