//! `/account`: the signed-in user's account. Where they are signed in (device, address,
//! last seen) with a button to end each session and one to sign out everywhere else;
//! changing the password; downloading their data; deleting the account. Like the sign-in
//! window it ships no WASM: each form posts to its server function, which answers with a
//! redirect back here saying what was done (or what refused it), as a code in the address.

use crate::app::server_fns::{
    list_sessions, ChangePassword, DeleteAccount, EndSession, SignOutOthers,
};
use crate::protocol::{
    http::{paths, AccountNotice, SessionView},
    UserSummary,
};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::hooks::use_query_map;

/// "3 December 2026, 14:05 UTC": the page is rendered on the server, which knows no time
/// zone of the reader's.
pub fn when(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let (h, m) = (secs.rem_euclid(86_400) / 3600, secs.rem_euclid(3600) / 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    format!(
        "{d} {} {year}, {h:02}:{m:02} UTC",
        MONTHS[(month - 1) as usize]
    )
}

#[component]
pub fn AccountPage(me: UserSummary) -> impl IntoView {
    let query = use_query_map();
    let get = move |k: &str| query.with_untracked(|q| q.get(k)).unwrap_or_default();
    let done = AccountNotice::parse(&get("done")).filter(|n| n.is_done());
    let refused = AccountNotice::parse(&get("error")).filter(|n| !n.is_done());
    let sessions = Resource::new_blocking(|| (), |_| list_sessions());
    let is_guest = me.is_guest;
    view! {
        <main class="desktop account-desktop">
            <section class="window account-window" aria-labelledby="account-title">
                <header class="titlebar">
                    <span class="titlebar-logo" aria-hidden="true"></span>
                    <h1 id="account-title">{format!("Your account: {}", me.username)}</h1>
                </header>
                <div class="account-body">
                    <p><a class="button" href="/app">"Back to Messenger"</a></p>
                    {done.map(|n| view! { <p class="form-notice" role="status">{n.message()}</p> })}
                    {refused.map(|n| view! { <p class="form-error" role="alert">{n.message()}</p> })}

                    <section class="account-part" aria-labelledby="sessions-title">
                        <h2 id="sessions-title">"Where you are signed in"</h2>
                        <Suspense fallback=|| view! { <p>"Looking…"</p> }>
                            {move || Suspend::new(async move {
                                match sessions.await {
                                    Ok(list) => view! { <SessionList list=list/> }.into_any(),
                                    Err(e) => view! { <p class="form-error">{e.message}</p> }.into_any(),
                                }
                            })}
                        </Suspense>
                        <form method="post" action=SignOutOthers::PATH>
                            <button type="submit">"Sign out everywhere else"</button>
                        </form>
                    </section>

                    {(!is_guest).then(|| view! {
                        <section class="account-part" aria-labelledby="password-title">
                            <h2 id="password-title">"Change your password"</h2>
                            <form method="post" action=ChangePassword::PATH class="account-form">
                                <label for="current-password">"Current password"</label>
                                <input id="current-password" name="current_password" type="password"
                                    autocomplete="current-password" required/>
                                <label for="new-password">"New password (8 to 128 characters)"</label>
                                <input id="new-password" name="new_password" type="password"
                                    autocomplete="new-password" minlength="8" maxlength="128" required/>
                                <button type="submit">"Change password"</button>
                            </form>
                            <p class="hint">"Changing it signs you out everywhere else."</p>
                        </section>
                    })}

                    <section class="account-part" aria-labelledby="data-title">
                        <h2 id="data-title">"Your data"</h2>
                        <p>"Everything this server holds about you: your profile and picture, contacts, sessions, the conversations you are in with the messages you can see, and the security events about your account, as one JSON file."</p>
                        <a class="button" href=paths::EXPORT download>"Download your data"</a>
                    </section>

                    <section class="account-part danger" aria-labelledby="delete-title">
                        <h2 id="delete-title">"Delete your account"</h2>
                        <p>"You are signed out everywhere, and your profile, picture, contacts and everything you wrote are erased: the others see \u{201c}message deleted\u{201d} where your messages were. Your username stays reserved, so nobody can pass for you. This cannot be undone."</p>
                        <form method="post" action=DeleteAccount::PATH class="account-form">
                            {(!is_guest).then(|| view! {
                                <label for="delete-password">"Your password"</label>
                                <input id="delete-password" name="password" type="password"
                                    autocomplete="current-password" required/>
                            })}
                            <label class="check">
                                <input type="checkbox" name="confirm" value="yes" required/>
                                "I want my account and everything I wrote deleted"
                            </label>
                            <button type="submit" class="danger">"Delete my account"</button>
                        </form>
                    </section>
                </div>
            </section>
        </main>
    }
}

#[component]
fn SessionList(list: Vec<SessionView>) -> impl IntoView {
    view! {
        <ul class="session-list">
            {list.into_iter().map(|s| {
                let device = s.device.clone().unwrap_or_else(|| "Unknown device".to_owned());
                let from = s.address.clone().map(|a| format!("from {a}")).unwrap_or_default();
                view! {
                    <li class="session">
                        <span class="session-device">{device}</span>
                        " "
                        <span class="session-address">{from}</span>
                        <span class="session-seen">{format!("last seen {}", when(s.last_seen_at))}</span>
                        {if s.current {
                            view! { <span class="session-current">"This browser"</span> }.into_any()
                        } else {
                            view! {
                                <form method="post" action=EndSession::PATH class="inline-form">
                                    <input type="hidden" name="id" value=s.id.to_string()/>
                                    <button type="submit" aria-label=format!("End the session on {}", s.device.clone().unwrap_or_default())>"End"</button>
                                </form>
                            }.into_any()
                        }}
                    </li>
                }
            }).collect_view()}
        </ul>
    }
}

#[cfg(test)]
mod tests {
    use super::when;

    #[test]
    fn times_are_written_as_dates() {
        assert_eq!(when(0), "1 January 1970, 00:00 UTC");
        // 2026-12-06 10:46:36 UTC.
        assert_eq!(when(1_796_553_996_000), "6 December 2026, 10:46 UTC");
        assert_eq!(when(951_782_400_000), "29 February 2000, 00:00 UTC");
    }
}
