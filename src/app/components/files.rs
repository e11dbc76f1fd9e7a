//! Files and photos in a conversation window: sending them (the button, a drop on the
//! window, a pasted image), each with its progress and a way to cancel or retry, and
//! showing the ones shared: a photo as the server's thumbnail that opens the full picture,
//! any other file as its name, size and type with a download link.
//!
//! An upload goes with `XMLHttpRequest` (its upload progress is the one a browser reports;
//! `fetch` has none) to `POST /api/conversations/{id}/files`. A failed one is sent again
//! with the same client id, so the server shares it once however often it is retried; the
//! message itself arrives over the socket like any other.

use crate::app::{actions, model::Line};
use crate::protocol::{http::paths, SharedFile};
use leptos::prelude::*;

/// A file on its way to the server.
#[derive(Clone)]
pub struct Upload {
    key: u64,
    client_id: String,
    name: String,
    size: f64,
    sent: f64,
    failed: Option<String>,
    file: web_sys::File,
    request: Option<web_sys::XmlHttpRequest>,
}

/// A window's uploads (browser-only values: local to the thread).
pub type Uploads = RwSignal<Vec<Upload>, LocalStorage>;

/// Starts sending each of `files` into `conv`.
pub fn send_files(uploads: Uploads, conv: i64, files: Option<web_sys::FileList>) {
    let Some(files) = files else { return };
    for i in 0..files.length() {
        if let Some(file) = files.get(i) {
            let key = (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64;
            uploads.update(|u| {
                u.push(Upload {
                    key,
                    client_id: actions::new_client_id(),
                    name: file.name(),
                    size: file.size(),
                    sent: 0.0,
                    failed: None,
                    file,
                    request: None,
                })
            });
            transmit(uploads, conv, key);
        }
    }
}

/// Sends (or sends again) the upload `key`.
fn transmit(uploads: Uploads, conv: i64, key: u64) {
    use wasm_bindgen::{closure::Closure, JsCast};
    let Some(up) = uploads.with_untracked(|u| u.iter().find(|x| x.key == key).cloned()) else {
        return;
    };
    let Ok(xhr) = web_sys::XmlHttpRequest::new() else {
        return;
    };
    let url = format!(
        "{}?client_id={}&name={}",
        paths::at(paths::FILES_UPLOAD, conv),
        up.client_id,
        String::from(js_sys::encode_uri_component(&up.name))
    );
    if xhr.open("POST", &url).is_err() {
        return;
    }
    let fail = move |why: String| {
        uploads.update(|u| {
            if let Some(x) = u.iter_mut().find(|x| x.key == key) {
                x.failed = Some(why);
                x.request = None;
            }
        })
    };
    let progress =
        Closure::<dyn FnMut(web_sys::ProgressEvent)>::new(move |ev: web_sys::ProgressEvent| {
            uploads.update(|u| {
                if let Some(x) = u.iter_mut().find(|x| x.key == key) {
                    x.sent = ev.loaded();
                }
            })
        });
    if let Ok(target) = xhr.upload() {
        target.set_onprogress(Some(progress.as_ref().unchecked_ref()));
    }
    progress.forget();
    let answered = xhr.clone();
    let onload = Closure::once_into_js(move || {
        let status = answered.status().unwrap_or(0);
        if status == 200 {
            // The message comes over the socket; the upload's line goes.
            uploads.update(|u| u.retain(|x| x.key != key));
        } else {
            let text = answered.response_text().ok().flatten().unwrap_or_default();
            let why = serde_json::from_str::<crate::protocol::http::ApiError>(&text)
                .map(|e| e.message)
                .unwrap_or_else(|_| format!("the server answered {status}"));
            fail(why);
        }
    });
    xhr.set_onload(Some(onload.unchecked_ref()));
    let onerror = Closure::once_into_js(move || fail("the connection dropped".to_owned()));
    xhr.set_onerror(Some(onerror.unchecked_ref()));
    uploads.update(|u| {
        if let Some(x) = u.iter_mut().find(|x| x.key == key) {
            x.failed = None;
            x.sent = 0.0;
            x.request = Some(xhr.clone());
        }
    });
    let blob: &web_sys::Blob = up.file.as_ref();
    if xhr.send_with_opt_blob(Some(blob)).is_err() {
        fail("the browser could not send it".to_owned());
    }
}

/// The window's uploads: each with its progress and Cancel, or why it failed with Retry.
#[component]
pub fn UploadList(uploads: Uploads, conv: i64) -> impl IntoView {
    view! {
        <ul class="uploads" aria-label="Files being sent">
            <For each=move || uploads.get() key=|u| (u.key, u.failed.clone(), u.request.is_some())
                children=move |u| {
                    let key = u.key;
                    let name = u.name.clone();
                    let sent = Memo::new(move |_| uploads.with(|all| all.iter().find(|x| x.key == key).map_or(0.0, |x| x.sent)));
                    let cancel = move |_| {
                        uploads.update(|all| {
                            if let Some(x) = all.iter().find(|x| x.key == key) {
                                if let Some(r) = &x.request {
                                    let _ = r.abort();
                                }
                            }
                            all.retain(|x| x.key != key);
                        })
                    };
                    view! {
                        <li class="upload">
                            <span class="upload-name">{name.clone()}</span>
                            {match u.failed.clone() {
                                None => view! {
                                    <progress max=u.size value=move || sent.get() aria-label=format!("Sending {name}")></progress>
                                    <button type="button" aria-label=format!("Cancel sending {}", u.name) on:click=cancel>"Cancel"</button>
                                }.into_any(),
                                Some(why) => view! {
                                    <span class="form-error" role="alert">{format!("Not sent: {why}")}</span>
                                    <button type="button" aria-label=format!("Retry sending {}", u.name)
                                        on:click=move |_| transmit(uploads, conv, key)>"Retry"</button>
                                    <button type="button" aria-label=format!("Dismiss {}", u.name) on:click=cancel>"Dismiss"</button>
                                }.into_any(),
                            }}
                        </li>
                    }
                }/>
        </ul>
    }
}

/// "Send a file": the file chooser, several at once.
#[component]
pub fn AttachButton(uploads: Uploads, conv: i64) -> impl IntoView {
    view! {
        <label class="button attach-button" title="Send a file or photo">
            "Send a file"
            <input type="file" multiple class="visually-hidden"
                on:change=move |ev| {
                    let input = event_target::<web_sys::HtmlInputElement>(&ev);
                    send_files(uploads, conv, input.files());
                    input.set_value("");
                }/>
        </label>
    }
}

/// A size as people read it.
fn size_text(n: i64) -> String {
    match n {
        n if n < 1_000 => format!("{n} bytes"),
        n if n < 1_000_000 => format!("{:.0} KB", n as f64 / 1e3),
        n => format!("{:.1} MB", n as f64 / 1e6),
    }
}

/// A shared file in the history.
#[component]
pub fn FileBody(line: Line) -> impl IntoView {
    let Ok(file) = serde_json::from_str::<SharedFile>(&line.body) else {
        return view! { <p class="body hint">"A file (it could not be read)."</p> }.into_any();
    };
    let download = paths::at(paths::FILE, file.id);
    let about = format!("{} · {}", size_text(file.size), file.mime);
    match file.picture {
        Some((w, h)) => {
            // The thumbnail's size (the server fits it in 320 x 320): the space is kept
            // before it loads, so the window's scroll stays where it is.
            let scale = (320.0 / f64::from(w.max(h))).min(1.0);
            let (tw, th) = (
                (f64::from(w) * scale).round().max(1.0),
                (f64::from(h) * scale).round().max(1.0),
            );
            view! {
                <figure class="body shared-picture">
                    <a href=paths::at(paths::FILE_VIEW, file.id) target="_blank" rel="noopener"
                        title="Open the full picture">
                        <img src=paths::at(paths::FILE_THUMB, file.id) alt=format!("Photo: {}", file.name)
                            width=tw height=th loading="lazy"/>
                    </a>
                    <figcaption class="hint">
                        {file.name.clone()} " · " {format!("{w} x {h}")} " · "
                        <a href=download download=file.name.clone()>"Download"</a>
                    </figcaption>
                </figure>
            }
            .into_any()
        }
        None => view! {
            <p class="body shared-file">
                <a href=download download=file.name.clone()>{file.name.clone()}</a>
                <span class="hint">" (" {about} ")"</span>
            </p>
        }
        .into_any(),
    }
}
