//! `/admin`: the admin console (administrators only; the server answers anyone else with
//! `403` before this renders). The live numbers with a chart of the last hour's messages,
//! and the SQL page over the analytics database: ready-made queries, a box for one's own,
//! the answer as a table and, when its first column is a time and the others numbers, a
//! chart. Server-rendered without WASM: the query is a plain `GET` form (reading only); the
//! overview's numbers and chart follow the server every five seconds (`public/admin-live.js`).

use crate::app::server_fns::{
    admin_audit, admin_bots, admin_overview, admin_query, admin_rooms, admin_users, AdminReauth,
    AdminRoom, AdminSwitchBots, AdminUser,
};
use crate::protocol::http::QueryAnswer;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::hooks::use_query_map;

/// The ready-made queries (the same as `server::reports::READY_MADE`, which the browser
/// build does not have): their titles and SQL.
#[cfg(feature = "ssr")]
fn ready_made() -> Vec<(&'static str, &'static str)> {
    crate::server::reports::READY_MADE.to_vec()
}

#[cfg(not(feature = "ssr"))]
fn ready_made() -> Vec<(&'static str, &'static str)> {
    Vec::new()
}

#[component]
pub fn AdminPage() -> impl IntoView {
    let query = use_query_map();
    let sql = query.with_untracked(|q| q.get("q")).unwrap_or_default();
    let overview = Resource::new_blocking(|| (), |_| admin_overview());
    let asked = sql.clone();
    let answer = Resource::new_blocking(
        move || asked.clone(),
        |sql| async move {
            if sql.trim().is_empty() {
                None
            } else {
                Some(admin_query(sql).await)
            }
        },
    );
    view! {
        <AdminWindow title_id="admin-title" title="Administration">
            <section class="account-part" aria-labelledby="overview-title">
                <h2 id="overview-title">"Now"</h2>
                <Suspense fallback=|| view! { <p>"Looking…"</p> }>
                    {move || Suspend::new(async move {
                        match overview.await {
                            Ok(o) => view! {
                                <dl class="admin-numbers">
                                    <div><dt>"Sockets open"</dt><dd data-live="sockets">{o.sockets}</dd></div>
                                    <div><dt>"Users online"</dt><dd data-live="users_online">{o.users_online}</dd></div>
                                    <div><dt>"Messages waiting for the writer"</dt><dd data-live="writer_queue">{o.writer_queue}</dd></div>
                                    <div><dt>"Analytics events dropped"</dt><dd data-live="analytics_dropped">{o.analytics_dropped}</dd></div>
                                </dl>
                                <h3>"Messages per minute, last hour"</h3>
                                <div data-live-chart="">
                                    {chart(
                                        "Messages per minute in the last hour",
                                        o.messages_per_minute.iter().map(|(m, _)| m.clone()).collect(),
                                        vec![("messages".to_owned(), o.messages_per_minute.iter().map(|(_, n)| *n as f64).collect())],
                                    )}
                                </div>
                                <p class="hint">"These follow the server every five seconds."</p>
                                <script src="/admin-live.js" defer></script>
                            }.into_any(),
                            Err(e) => view! { <p class="form-error" role="alert">{e.message}</p> }.into_any(),
                        }
                    })}
                </Suspense>
            </section>
            <section class="account-part" aria-labelledby="sql-title">
                <h2 id="sql-title">"Analytics, in SQL"</h2>
                <p class="hint">"One reading statement over the analytics database (docs/ANALYTICS.md): at most 3 seconds and 1,000 rows."</p>
                <ul class="ready-made">
                    {ready_made().into_iter().map(|(title, q)| {
                        let href = format!("/admin?q={}", encode(q));
                        view! { <li><a href=href>{title}</a></li> }
                    }).collect_view()}
                </ul>
                <form method="get" action="/admin" class="sql-form">
                    <label for="sql">"Query"</label>
                    <textarea id="sql" name="q" rows="6" spellcheck="false">{sql.clone()}</textarea>
                    <button type="submit" class="primary">"Run"</button>
                </form>
                <Suspense fallback=|| view! { <p>"Running…"</p> }>
                    {move || Suspend::new(async move {
                        match answer.await {
                            None => ().into_any(),
                            Some(Ok(a)) => view! { <Answer answer=a/> }.into_any(),
                            Some(Err(e)) => view! { <p class="form-error" role="alert">{e.message}</p> }.into_any(),
                        }
                    })}
                </Suspense>
            </section>
        </AdminWindow>
    }
}

/// A query string value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[component]
fn Answer(answer: QueryAnswer) -> impl IntoView {
    let cell = |v: &serde_json::Value| match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    // A chart when the first column reads as time and every other column as numbers.
    let timeline = answer.columns.len() >= 2
        && !answer.rows.is_empty()
        && answer.rows.iter().all(|r| {
            r.first()
                .and_then(|v| v.as_str())
                .is_some_and(looks_like_time)
                && r.iter().skip(1).all(|v| v.is_number() || v.is_null())
        });
    let drawn = timeline.then(|| {
        let labels = answer.rows.iter().map(|r| cell(&r[0])).collect();
        let series = answer
            .columns
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, name)| {
                (
                    name.clone(),
                    answer
                        .rows
                        .iter()
                        .map(|r| r.get(i).and_then(|v| v.as_f64()).unwrap_or(0.0))
                        .collect(),
                )
            })
            .collect();
        chart("The query's answer over time", labels, series)
    });
    let summary = format!(
        "{} row{} in {} ms{}",
        answer.rows.len(),
        if answer.rows.len() == 1 { "" } else { "s" },
        answer.millis,
        if answer.truncated {
            " (more were left out)"
        } else {
            ""
        }
    );
    view! {
        <p class="hint" role="status">{summary}</p>
        {drawn}
        <div class="sql-answer">
            <table>
                <thead><tr>{answer.columns.iter().map(|c| view! { <th scope="col">{c.clone()}</th> }).collect_view()}</tr></thead>
                <tbody>
                    {answer.rows.iter().map(|r| view! {
                        <tr>{r.iter().map(|v| view! { <td>{cell(v)}</td> }).collect_view()}</tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// "2026-12-06 14:00", "2026-12-06", "14:05": what the ready-made queries group by.
fn looks_like_time(s: &str) -> bool {
    let digits_at = |i: usize| s.as_bytes().get(i).is_some_and(u8::is_ascii_digit);
    (s.len() >= 10 && digits_at(0) && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-')
        || (s.len() == 5 && digits_at(0) && s.as_bytes()[2] == b':')
}

/// A line chart as SVG: one line per series over the labels, with the first and last
/// label under it and the highest value beside it.
fn chart(
    title: &'static str,
    labels: Vec<String>,
    series: Vec<(String, Vec<f64>)>,
) -> impl IntoView {
    const W: f64 = 520.0;
    const H: f64 = 160.0;
    let n = labels.len();
    let top = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let x = move |i: usize| {
        if n <= 1 {
            W / 2.0
        } else {
            30.0 + (W - 40.0) * i as f64 / (n - 1) as f64
        }
    };
    let y = move |v: f64| H - 20.0 - (H - 30.0) * v / top;
    const COLOURS: [&str; 4] = ["#2a7fd4", "#3fa535", "#d4862a", "#8a4fd4"];
    let lines = series
        .iter()
        .enumerate()
        .map(|(k, (name, values))| {
            let points = values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
                .collect::<Vec<_>>()
                .join(" ");
            let colour = COLOURS[k % COLOURS.len()];
            view! {
                <polyline points=points fill="none" stroke=colour stroke-width="2">
                    <title>{name.clone()}</title>
                </polyline>
            }
        })
        .collect_view();
    let legend = series
        .iter()
        .enumerate()
        .map(|(k, (name, _))| {
            let style = format!("color: {}", COLOURS[k % COLOURS.len()]);
            view! { <span class="legend-item" style=style>"■ " {name.clone()}</span> }
        })
        .collect_view();
    let first = labels.first().cloned().unwrap_or_default();
    let last = labels.last().cloned().unwrap_or_default();
    let view_box = format!("0 0 {W} {H}");
    view! {
        <figure class="chart">
            <svg role="img" aria-label=title viewBox=view_box width="100%">
                <line x1="30" y1=H - 20.0 x2=W - 10.0 y2=H - 20.0 stroke="#9bb"/>
                <text x="2" y="14" font-size="11">{format!("{top}")}</text>
                <text x="30" y=H - 4.0 font-size="11">{first}</text>
                <text x=W - 10.0 y=H - 4.0 font-size="11" text-anchor="end">{last}</text>
                {lines}
            </svg>
            <figcaption>{legend}</figcaption>
        </figure>
    }
}

/// The console's window: its title bar, the pages' links and the page.
#[component]
fn AdminWindow(title_id: &'static str, title: &'static str, children: Children) -> impl IntoView {
    view! {
        <main class="desktop admin-desktop">
            <section class="window admin-window" aria-labelledby=title_id>
                <header class="titlebar">
                    <span class="titlebar-logo" aria-hidden="true"></span>
                    <h1 id=title_id>{title}</h1>
                </header>
                <div class="admin-body">
                    <AdminNav/>
                    {children()}
                </div>
            </section>
        </main>
    }
}

/// What a form that came back says: done (a status) or refused (an alert).
#[component]
fn Notice(notice: Option<(bool, &'static str)>) -> impl IntoView {
    notice.map(|(ok, text)| {
        if ok {
            view! { <p class="form-notice" role="status">{text}</p> }.into_any()
        } else {
            view! { <p class="form-error" role="alert">{text}</p> }.into_any()
        }
    })
}

/// The console's pages, and the way back.
#[component]
fn AdminNav() -> impl IntoView {
    view! {
        <nav class="admin-nav" aria-label="Administration">
            <a class="button" href="/app">"Back to Messenger"</a>
            <a href="/admin">"Overview and SQL"</a>
            <a href="/admin/users">"Users"</a>
            <a href="/admin/rooms">"Rooms"</a>
            <a href="/admin/bots">"AI contacts"</a>
            <a href="/admin/audit">"Audit log"</a>
        </nav>
    }
}

/// What the users page says after a form came back (fixed texts for the codes in the
/// address; anything else says nothing).
fn users_notice(done: &str, error: &str) -> Option<(bool, &'static str)> {
    let ok = match done {
        "reauthenticated" => Some("Password confirmed: changes are open for ten minutes."),
        "disabled" => Some("The account is disabled: it cannot sign in, and its sessions ended."),
        "enabled" => Some("The account is enabled again."),
        "signed_out" => Some("Every session of that account ended."),
        "deleted" => Some("The account was deleted, with everything it wrote."),
        "bots_on" => Some("The AI contacts answer again."),
        "bots_off" => Some("The AI contacts stopped answering; each says it is away."),
        "room_added" => Some("The room was added: everyone can find it and join."),
        "room_renamed" => Some("The room has its new title; its members see it at once."),
        "room_archived" => Some(
            "The room is archived: it left every list and its members' windows; nobody can join or write. Its history stays.",
        ),
        "room_restored" => Some("The room is back, with its members and history."),
        _ => None,
    };
    if let Some(text) = ok {
        return Some((true, text));
    }
    let refused = match error {
        "reauth_needed" => {
            Some("Enter your password again first: changes like this ask for it every ten minutes.")
        }
        "wrong_password" => Some("That is not your password."),
        "not_found" => Some("There is no such account."),
        "too_many_attempts" => Some("Too many wrong passwords. Wait a little, then try again."),
        "invalid" => Some(
            "A room title is 1 to 64 characters on one line, without invisible or direction characters.",
        ),
        "failed" => Some("Something went wrong on our side. Please try again."),
        _ => None,
    };
    refused.map(|text| (false, text))
}

/// `/admin/users`: find accounts; disable or enable them, sign them out everywhere, delete
/// them. The changes need the administrator's password entered again within ten minutes.
#[component]
pub fn AdminUsersPage() -> impl IntoView {
    let query = use_query_map();
    let get = move |k: &str| query.with_untracked(|q| q.get(k)).unwrap_or_default();
    let search = get("q");
    let notice = users_notice(&get("done"), &get("error"));
    let asked = search.clone();
    let users = Resource::new_blocking(move || asked.clone(), admin_users);
    let back = search.clone();
    view! {
        <AdminWindow title_id="users-title" title="Administration: users">
            <Notice notice=notice/>
            <form method="get" action="/admin/users" class="admin-search">
                <label for="user-search">"Find accounts"</label>
                <input id="user-search" type="search" name="q" value=search.clone()/>
                <button type="submit">"Search"</button>
            </form>
            <form method="post" action=AdminReauth::PATH class="admin-search">
                <label for="reauth-password">"Your password (asked before changes, every ten minutes)"</label>
                <input id="reauth-password" type="password" name="password" autocomplete="current-password" required/>
                <input type="hidden" name="search" value=search.clone()/>
                <button type="submit">"Confirm"</button>
            </form>
            <Suspense fallback=|| view! { <p>"Looking…"</p> }>
                {move || {
                    let back = back.clone();
                    Suspend::new(async move {
                        match users.await {
                            Ok(list) if list.is_empty() => view! { <p class="hint">"No account matches."</p> }.into_any(),
                            Ok(list) => view! { <UserTable list=list back=back/> }.into_any(),
                            Err(e) => view! { <p class="form-error" role="alert">{e.message}</p> }.into_any(),
                        }
                    })
                }}
            </Suspense>
        </AdminWindow>
    }
}

#[component]
fn UserTable(list: Vec<crate::protocol::http::AccountView>, back: String) -> impl IntoView {
    view! {
        <div class="sql-answer">
            <table>
                <caption class="hint">{format!("{} account{}", list.len(), if list.len() == 1 { "" } else { "s" })}</caption>
                <thead><tr>
                    <th scope="col">"Username"</th><th scope="col">"Display name"</th>
                    <th scope="col">"Kind"</th><th scope="col">"Sessions"</th><th scope="col">"Actions"</th>
                </tr></thead>
                <tbody>
                    {list.into_iter().map(|u| {
                        let kind = match (u.is_guest, u.is_admin, u.disabled) {
                            (_, _, true) => "disabled",
                            (true, _, _) => "guest",
                            (_, true, _) => "administrator",
                            _ => "account",
                        };
                        let act = |action: &'static str, label: &'static str| {
                            let aria = format!("{label} {}", u.username);
                            let danger = action == "delete";
                            view! {
                                <form method="post" action=AdminUser::PATH class="inline-form">
                                    <input type="hidden" name="username" value=u.username.clone()/>
                                    <input type="hidden" name="action" value=action/>
                                    <input type="hidden" name="search" value=back.clone()/>
                                    <button type="submit" aria-label=aria class:danger=danger>{label}</button>
                                </form>
                            }
                        };
                        view! {
                            <tr>
                                <td>{u.username.clone()}</td>
                                <td>{u.display_name.clone()}</td>
                                <td>{kind}</td>
                                <td>{u.sessions}</td>
                                <td class="admin-actions">
                                    {if u.disabled { act("enable", "Enable") } else { act("disable", "Disable") }}
                                    {act("sign_out", "Sign out everywhere")}
                                    {act("delete", "Delete")}
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// `/admin/rooms`: the public rooms: add one, retitle one, archive one (which needs the
/// administrator's password entered again within ten minutes) or restore it.
#[component]
pub fn AdminRoomsPage() -> impl IntoView {
    let query = use_query_map();
    let get = move |k: &str| query.with_untracked(|q| q.get(k)).unwrap_or_default();
    let search = get("q");
    let notice = users_notice(&get("done"), &get("error"));
    let asked = search.clone();
    let rooms = Resource::new_blocking(move || asked.clone(), admin_rooms);
    let back = search.clone();
    view! {
        <AdminWindow title_id="rooms-title" title="Administration: rooms">
            <Notice notice=notice/>
            <form method="post" action=AdminRoom::PATH class="admin-search">
                <label for="new-room">"New room"</label>
                <input id="new-room" type="text" name="title" maxlength="64" required/>
                <input type="hidden" name="action" value="add"/>
                <input type="hidden" name="search" value=search.clone()/>
                <button type="submit">"Add"</button>
            </form>
            <form method="get" action="/admin/rooms" class="admin-search">
                <label for="room-search">"Find rooms"</label>
                <input id="room-search" type="search" name="q" value=search.clone()/>
                <button type="submit">"Search"</button>
            </form>
            <form method="post" action=AdminReauth::PATH class="admin-search">
                <label for="reauth-password">"Your password (asked before archiving, every ten minutes)"</label>
                <input id="reauth-password" type="password" name="password" autocomplete="current-password" required/>
                <input type="hidden" name="search" value=search.clone()/>
                <input type="hidden" name="back" value="rooms"/>
                <button type="submit">"Confirm"</button>
            </form>
            <Suspense fallback=|| view! { <p>"Looking…"</p> }>
                {move || {
                    let back = back.clone();
                    Suspend::new(async move {
                        match rooms.await {
                            Ok(list) if list.is_empty() => view! { <p class="hint">"No room matches."</p> }.into_any(),
                            Ok(list) => view! { <RoomTable list=list back=back/> }.into_any(),
                            Err(e) => view! { <p class="form-error" role="alert">{e.message}</p> }.into_any(),
                        }
                    })
                }}
            </Suspense>
        </AdminWindow>
    }
}

#[component]
fn RoomTable(list: Vec<crate::protocol::http::RoomAdminView>, back: String) -> impl IntoView {
    view! {
        <div class="sql-answer">
            <table>
                <caption class="hint">{format!("{} room{}", list.len(), if list.len() == 1 { "" } else { "s" })}</caption>
                <thead><tr>
                    <th scope="col">"#"</th><th scope="col">"Title"</th><th scope="col">"Members"</th>
                    <th scope="col">"Messages"</th><th scope="col">"State"</th><th scope="col">"Actions"</th>
                </tr></thead>
                <tbody>
                    {list.into_iter().map(|r| {
                        let id = r.id.to_string();
                        let rename_id = format!("rename-{}", r.id);
                        let rename_label = format!("New title for {}", r.title);
                        let rename_aria = format!("Rename {}", r.title);
                        let (action, label) = if r.archived { ("restore", "Restore") } else { ("archive", "Archive") };
                        let aria = format!("{label} {}", r.title);
                        let danger = !r.archived;
                        view! {
                            <tr>
                                <td>{r.id}</td>
                                <td>{r.title.clone()}</td>
                                <td>{r.members}</td>
                                <td>{r.messages}</td>
                                <td>{if r.archived { "archived" } else { "open" }}</td>
                                <td class="admin-actions">
                                    <form method="post" action=AdminRoom::PATH class="inline-form">
                                        <input type="hidden" name="room" value=id.clone()/>
                                        <input type="hidden" name="action" value="rename"/>
                                        <input type="hidden" name="search" value=back.clone()/>
                                        <label class="visually-hidden" for=rename_id.clone()>{rename_label}</label>
                                        <input id=rename_id type="text" name="title" maxlength="64" required value=r.title.clone()/>
                                        <button type="submit" aria-label=rename_aria>"Rename"</button>
                                    </form>
                                    <form method="post" action=AdminRoom::PATH class="inline-form">
                                        <input type="hidden" name="room" value=id/>
                                        <input type="hidden" name="action" value=action/>
                                        <input type="hidden" name="search" value=back.clone()/>
                                        <button type="submit" aria-label=aria class:danger=danger>{label}</button>
                                    </form>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// `/admin/bots`: the AI contacts: on or off (switched here at once), the model and its
/// circuit breaker, today's replies against the daily limit, and each persona's last day.
#[component]
pub fn AdminBotsPage() -> impl IntoView {
    let query = use_query_map();
    let notice = query.with_untracked(|q| users_notice(&q.get("done").unwrap_or_default(), ""));
    let bots = Resource::new_blocking(|| (), |_| admin_bots());
    view! {
        <AdminWindow title_id="bots-title" title="Administration: AI contacts">
            {notice.map(|(_, text)| view! { <p class="form-notice" role="status">{text}</p> })}
            <Suspense fallback=|| view! { <p>"Looking…"</p> }>
                {move || Suspend::new(async move {
                    match bots.await {
                        Ok(b) => view! {
                            <dl class="admin-numbers">
                                <div><dt>"Answering"</dt><dd>{if b.enabled { "yes" } else { "no" }}</dd></div>
                                <div><dt>"Language model"</dt><dd>{if b.model { "configured" } else { "offline engine" }}</dd></div>
                                <div><dt>"Circuit breaker"</dt><dd>{b.breaker.clone()}</dd></div>
                                <div><dt>"Replies today"</dt><dd>{format!("{} of {}", b.replies_today, b.daily_limit)}</dd></div>
                            </dl>
                            <form method="post" action=AdminSwitchBots::PATH class="admin-search">
                                <input type="hidden" name="on" value=if b.enabled { "no" } else { "yes" }/>
                                <button type="submit">{if b.enabled { "Stop every AI reply" } else { "Let the AI contacts answer" }}</button>
                            </form>
                            <h2>"The last 24 hours, by persona"</h2>
                            <Answer answer=b.last_day/>
                        }.into_any(),
                        Err(e) => view! { <p class="form-error" role="alert">{e.message}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </AdminWindow>
    }
}

/// `/admin/audit`: the audit log, newest first, a hundred at a time, and whether its chain
/// of hashes holds.
#[component]
pub fn AdminAuditPage() -> impl IntoView {
    let query = use_query_map();
    let before = query.with_untracked(|q| q.get("before").and_then(|b| b.parse::<i64>().ok()));
    let page = Resource::new_blocking(move || before, admin_audit);
    view! {
        <AdminWindow title_id="audit-title" title="Administration: audit log">
            <Suspense fallback=|| view! { <p>"Looking…"</p> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Ok(p) => {
                            let older = p.entries.last().map(|e| format!("/admin/audit?before={}", e.id));
                            let class = if p.chain_holds { "form-notice" } else { "form-error" };
                            view! {
                                <p class=class role="status">{p.chain.clone()}</p>
                                <div class="sql-answer">
                                    <table>
                                        <thead><tr>
                                            <th scope="col">"#"</th><th scope="col">"When (UTC)"</th><th scope="col">"Event"</th>
                                            <th scope="col">"Who"</th><th scope="col">"About"</th><th scope="col">"Address"</th><th scope="col">"Detail"</th>
                                        </tr></thead>
                                        <tbody>
                                            {p.entries.into_iter().map(|e| view! {
                                                <tr>
                                                    <td>{e.id}</td>
                                                    <td>{super::account::when(e.at)}</td>
                                                    <td>{e.event}</td>
                                                    <td>{e.actor}</td>
                                                    <td>{e.user.map(|u| format!("user:{u}")).unwrap_or_default()}</td>
                                                    <td>{e.address.unwrap_or_default()}</td>
                                                    <td><code>{e.detail}</code></td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                </div>
                                {older.map(|href| view! { <p><a href=href>"Older entries"</a></p> })}
                            }.into_any()
                        }
                        Err(e) => view! { <p class="form-error" role="alert">{e.message}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </AdminWindow>
    }
}
