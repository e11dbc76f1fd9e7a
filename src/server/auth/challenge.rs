//! Bot verification at the door: sign-up and guests always, a sign-in once its account has
//! had many wrong passwords. By default ALTCHA: the server signs a proof-of-work challenge
//! (`GET /api/challenge`), the browser's widget (served by us) solves it in the background,
//! and the form carries the solution back in its `proof` field. Each solved challenge opens
//! the door once: it is recorded as spent until it expires, in the database, so a replay
//! fails even after a restart. Cloudflare Turnstile can replace it: its token is checked
//! with Turnstile's `siteverify`, and anything but a clear yes (an error, a timeout) is a no.

use super::Proof;
use crate::protocol::http::DoorCheck;
use crate::server::{
    config::{Secret, VerificationConfig, VerificationKind},
    store::{now_ms, ChallengeStore},
};
use altcha::{CreateChallengeOptions, Payload, VerifySolutionOptions};
use anyhow::Context;
use base64::{engine::general_purpose::STANDARD, Engine};
use rand::Rng;
use std::{net::IpAddr, sync::Arc, time::Duration};

/// How long a challenge may be solved and used.
const CHALLENGE_LIFETIME: Duration = Duration::from_secs(600);
/// How long Turnstile may take to answer before the answer counts as no.
const TURNSTILE_WAIT: Duration = Duration::from_secs(10);

pub enum Verifier {
    Off,
    Altcha(Altcha),
    Turnstile(Turnstile),
}

pub struct Altcha {
    secret: Secret,
    key_secret: Secret,
    cost: u32,
    max_tries: u32,
    store: Arc<dyn ChallengeStore>,
}

pub struct Turnstile {
    site_key: String,
    secret: Secret,
    url: String,
    http: reqwest::Client,
}

impl Verifier {
    pub async fn build(
        cfg: &VerificationConfig,
        store: Arc<dyn ChallengeStore>,
    ) -> anyhow::Result<Self> {
        Ok(match cfg.kind() {
            VerificationKind::Off => Verifier::Off,
            VerificationKind::Altcha => {
                let secret = match &cfg.altcha_secret {
                    Some(s) => s.clone(),
                    None => Secret::new(store.setting_or("altcha_secret", &random_secret()).await?),
                };
                // A second key, derived, for the fast path of verification.
                let key_secret = Secret::new(format!("{}:key", secret.expose()));
                Verifier::Altcha(Altcha {
                    secret,
                    key_secret,
                    cost: cfg.altcha_cost.max(1),
                    max_tries: cfg.altcha_max_tries.max(2),
                    store,
                })
            }
            VerificationKind::Turnstile => {
                let (Some(site_key), Some(secret)) =
                    (&cfg.turnstile_site_key, &cfg.turnstile_secret)
                else {
                    anyhow::bail!("--verification turnstile needs --turnstile-site-key and --turnstile-secret");
                };
                Verifier::Turnstile(Turnstile {
                    site_key: site_key.clone(),
                    secret: secret.clone(),
                    url: cfg.turnstile_verify_url.clone(),
                    http: reqwest::Client::builder()
                        .timeout(TURNSTILE_WAIT)
                        .build()
                        .context("the Turnstile client")?,
                })
            }
        })
    }

    /// What the sign-in window shows.
    pub fn door(&self) -> DoorCheck {
        match self {
            Verifier::Off => DoorCheck::Off,
            Verifier::Altcha(_) => DoorCheck::Altcha,
            Verifier::Turnstile(t) => DoorCheck::Turnstile {
                site_key: t.site_key.clone(),
            },
        }
    }

    /// A new signed challenge (ALTCHA only).
    pub fn challenge(&self) -> Option<anyhow::Result<altcha::Challenge>> {
        let Verifier::Altcha(a) = self else {
            return None;
        };
        let expires_at = (now_ms() / 1000) + CHALLENGE_LIFETIME.as_secs() as i64;
        let counter = rand::thread_rng().gen_range(a.max_tries / 2..=a.max_tries);
        Some(
            altcha::create_challenge(CreateChallengeOptions {
                algorithm: "PBKDF2/SHA-256".into(),
                cost: a.cost,
                counter: Some(counter),
                expires_at: Some(expires_at),
                hmac_signature_secret: Some(a.secret.expose().to_owned()),
                hmac_key_signature_secret: Some(a.key_secret.expose().to_owned()),
                ..Default::default()
            })
            .map_err(|e| anyhow::anyhow!("creating a challenge: {e}")),
        )
    }

    /// Whether `proof` (the form's field) shows a solved challenge or a Turnstile pass.
    /// With verification off, every request passes.
    pub async fn check(&self, proof: &str, from: IpAddr) -> Proof {
        let proof = proof.trim();
        if matches!(self, Verifier::Off) {
            return Proof::Solved;
        }
        if proof.is_empty() {
            return Proof::None;
        }
        let passed = match self {
            Verifier::Off => Ok(true),
            Verifier::Altcha(a) => a.check(proof).await,
            Verifier::Turnstile(t) => t.check(proof, from).await,
        };
        match passed {
            Ok(true) => Proof::Solved,
            Ok(false) => Proof::None,
            Err(e) => {
                tracing::warn!(error = %e, "bot verification could not be checked; refused");
                Proof::None
            }
        }
    }

    /// Forgets spent challenges that have expired.
    pub async fn forget_expired(&self) -> anyhow::Result<u64> {
        match self {
            Verifier::Altcha(a) => Ok(a.store.forget_expired_challenges(now_ms() / 1000).await?),
            _ => Ok(0),
        }
    }
}

impl Altcha {
    async fn check(&self, proof: &str) -> anyhow::Result<bool> {
        let Ok(bytes) = STANDARD.decode(proof) else {
            return Ok(false);
        };
        let Ok(payload) = serde_json::from_slice::<Payload>(&bytes) else {
            return Ok(false);
        };
        let verified = altcha::verify_solution(VerifySolutionOptions {
            hmac_key_signature_secret: Some(self.key_secret.expose().to_owned()),
            ..VerifySolutionOptions::new(
                &payload.challenge,
                &payload.solution,
                self.secret.expose(),
            )
        })
        .map(|r| r.verified)
        .unwrap_or(false);
        if !verified {
            return Ok(false);
        }
        // Signed by us, so it has a signature and an expiry.
        let id = payload.challenge.signature.unwrap_or_default();
        let expires_at = payload.challenge.parameters.expires_at.unwrap_or(0);
        Ok(self.store.spend_challenge(&id, expires_at).await?)
    }
}

impl Turnstile {
    async fn check(&self, token: &str, from: IpAddr) -> anyhow::Result<bool> {
        #[derive(serde::Deserialize)]
        struct Answer {
            success: bool,
        }
        let remote = from.to_string();
        let answer: Answer = self
            .http
            .post(&self.url)
            .form(&[
                ("secret", self.secret.expose()),
                ("response", token),
                ("remoteip", remote.as_str()),
            ])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(answer.success)
    }
}

/// 256 random bits, hex.
fn random_secret() -> String {
    let bytes: [u8; 32] = rand::thread_rng().gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
