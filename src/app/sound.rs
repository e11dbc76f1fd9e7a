//! The sounds, synthesised in the browser with the Web Audio API (no audio files): a rising
//! chime when a contact signs in, a two-note "ding-dong" for a new message, a single soft
//! note for a contact request, and a low buzz for a nudge.

use super::reducer::Sound;
use std::cell::RefCell;
use web_sys::{AudioContext, OscillatorType};

/// One note: waveform, frequency (Hz), start offset and length (seconds), peak volume.
struct Note(OscillatorType, f32, f64, f64, f32);

fn notes(sound: Sound) -> Vec<Note> {
    use OscillatorType::{Sawtooth, Sine, Triangle};
    match sound {
        Sound::SignIn => vec![
            Note(Sine, 659.25, 0.0, 0.16, 0.25),
            Note(Sine, 987.77, 0.12, 0.28, 0.22),
        ],
        Sound::Message => vec![
            Note(Triangle, 1046.5, 0.0, 0.12, 0.25),
            Note(Triangle, 783.99, 0.11, 0.22, 0.22),
        ],
        Sound::Request => vec![Note(Sine, 880.0, 0.0, 0.25, 0.2)],
        Sound::Nudge => vec![
            Note(Sawtooth, 98.0, 0.0, 0.45, 0.18),
            Note(Sawtooth, 103.8, 0.0, 0.45, 0.12),
        ],
    }
}

const MUTED_KEY: &str = "messenger.muted";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// Whether this browser was told to keep quiet.
pub fn stored_muted() -> bool {
    storage()
        .and_then(|s| s.get_item(MUTED_KEY).ok().flatten())
        .is_some_and(|v| v == "1")
}

/// Remembers the choice in this browser.
pub fn remember_muted(muted: bool) {
    if let Some(s) = storage() {
        let _ = s.set_item(MUTED_KEY, if muted { "1" } else { "0" });
    }
}

thread_local! {
    static CONTEXT: RefCell<Option<AudioContext>> = const { RefCell::new(None) };
}

/// Plays a sound now. Browsers keep audio suspended until the page had a user gesture; a
/// sound before that is silently skipped, which is what the page wants anyway.
pub fn play(sound: Sound) {
    CONTEXT.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = AudioContext::new().ok();
        }
        if let Some(ctx) = slot.as_ref() {
            let _ = ctx.resume();
            for note in notes(sound) {
                let _ = schedule(ctx, &note);
            }
        }
    });
}

fn schedule(
    ctx: &AudioContext,
    &Note(kind, freq, at, len, peak): &Note,
) -> Result<(), wasm_bindgen::JsValue> {
    let start = ctx.current_time() + at;
    let osc = ctx.create_oscillator()?;
    osc.set_type(kind);
    osc.frequency().set_value(freq);
    let gain = ctx.create_gain()?;
    // A quick attack and an exponential fade, so notes do not click.
    gain.gain().set_value_at_time(0.0001, start)?;
    gain.gain()
        .exponential_ramp_to_value_at_time(peak, start + 0.015)?;
    gain.gain()
        .exponential_ramp_to_value_at_time(0.0001, start + len)?;
    osc.connect_with_audio_node(&gain)?;
    gain.connect_with_audio_node(&ctx.destination())?;
    osc.start_with_when(start)?;
    osc.stop_with_when(start + len + 0.02)?;
    Ok(())
}
