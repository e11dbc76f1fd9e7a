//! Request-level protections: the CSRF rule for state-changing requests, security headers,
//! and the session lookup that the server-rendered pages use.

use super::session::{self, TokenSource};
use crate::protocol::http::paths;
use crate::server::{error::AppError, state::AppState};
use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};

/// Whether `origin` is one of the allowed origins (the WebSocket upgrade asks too).
pub fn origin_allowed(state: &AppState, origin: &str) -> bool {
    state.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
}

/// Refuses state-changing requests from other origins. A request with an `Origin` header must
/// come from an allowed origin; one without it must not rely on the session cookie (browsers
/// always send `Origin` on POST; scripts use bearer tokens).
pub async fn csrf(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    match req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    {
        Some(origin) if !origin_allowed(&state, origin) => {
            AppError::Forbidden(format!("Requests from {origin} are not allowed.")).into_response()
        }
        Some(_) => next.run(req).await,
        None if matches!(
            session::request_token(req.headers()),
            Some((_, TokenSource::Cookie))
        ) =>
        {
            AppError::Forbidden("This request needs an Origin header.".into()).into_response()
        }
        None => next.run(req).await,
    }
}

/// The nonce of a page's inline scripts (in the request's extensions; the page's shell
/// gives it to Leptos, which puts it on the scripts it writes, and this layer puts it in
/// the Content-Security-Policy).
#[derive(Debug, Clone)]
pub struct CspNonce(pub String);

/// Headers every response carries: a strict Content-Security-Policy (a fresh nonce per
/// page), no sniffing or framing, `Cache-Control: no-store` on pages and the API (they carry
/// personal data; the bundle and public files keep their caching, and a display picture its
/// `private` caching: only the viewer's own browser keeps it, by version), and HSTS when the
/// public origin is https.
pub async fn headers(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let nonce = {
        let mut raw = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw)
    };
    req.extensions_mut().insert(CspNonce(nonce.clone()));
    let private = {
        let path = req.uri().path();
        path.starts_with("/api/") || path == "/ws" || path == "/" || path.starts_with("/app")
    };
    let mut res = next.run(req).await;
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let csp = if html {
        page_policy(&state, &nonce)
    } else {
        // Nothing else is a document; if one is opened as such, it may do nothing.
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'".into()
    };
    let h = res.headers_mut();
    // A handler's own policy for what it sends stays (shared files are sandboxed).
    let own = !html && h.contains_key(header::CONTENT_SECURITY_POLICY);
    if let (false, Ok(v)) = (own, HeaderValue::from_str(&csp)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    let kept_private = h
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("private"));
    if (private || html) && !kept_private {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    } else {
        h.entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-cache"));
    }
    if state.secure_cookies {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    res
}

/// A page's policy: scripts from this server or carrying the page's nonce (and WebAssembly
/// compiled by them), never `unsafe-eval` or inline scripts without it; Cloudflare's
/// Turnstile when the operator chose it; nothing may frame the page, and no base or plugin.
fn page_policy(state: &AppState, nonce: &str) -> String {
    let turnstile = matches!(
        state.verifier.door(),
        crate::protocol::http::DoorCheck::Turnstile { .. }
    );
    let (script_extra, frame) = if turnstile {
        (
            " https://challenges.cloudflare.com",
            "https://challenges.cloudflare.com",
        )
    } else {
        ("", "'none'")
    };
    // `cargo leptos watch` reloads the page through a socket on its own port.
    let reload = if std::env::var("LEPTOS_WATCH").is_ok() {
        let o = &state.leptos_options;
        let port = o.reload_external_port.unwrap_or(o.reload_port);
        format!(" ws://*:{port} wss://*:{port}")
    } else {
        String::new()
    };
    format!(
        "default-src 'self'; \
         script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'{script_extra}; \
         style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:; \
         connect-src 'self'{reload}; \
         worker-src 'self'; \
         frame-src {frame}; \
         object-src 'none'; \
         base-uri 'none'; \
         form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// Refuses requests for a host that is not one of the public origins' (`403`): a page
/// reached under another name (DNS rebinding) must not be served as ours (nor `/metrics`
/// to a page that rebound a name to this machine). `/health`, `/healthz` and `/readyz`
/// answer whatever the host, for load balancers.
pub async fn host(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == paths::HEALTH || path == paths::HEALTHZ || path == paths::READY {
        return next.run(req).await;
    }
    // An absolute-form request line names the host itself, and wins over `Host` (RFC 9112,
    // section 3.2.2); two `Host` headers are no request at all.
    let hosts = req.headers().get_all(header::HOST).iter().count();
    let host = match req.uri().authority() {
        Some(authority) => authority.as_str(),
        None => req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
    };
    let host = if hosts > 1 { "" } else { host };
    let known = state.origins.iter().any(|o| {
        o.split_once("://")
            .map(|(_, authority)| authority)
            .is_some_and(|a| {
                a.eq_ignore_ascii_case(host)
                    || default_port(o, a) == Some(host.to_ascii_lowercase())
            })
    });
    if known {
        next.run(req).await
    } else {
        AppError::Forbidden(format!(
            "This server answers for {} only (set --public-origin to add a name).",
            state.origins.join(", ")
        ))
        .into_response()
    }
}

/// `host:443` / `host:80` for an origin written without its default port (browsers send
/// the Host without it, proxies sometimes with it).
fn default_port(origin: &str, authority: &str) -> Option<String> {
    if authority.contains(':') {
        return None;
    }
    let port = if origin.starts_with("https://") {
        443
    } else {
        80
    };
    Some(format!("{}:{port}", authority.to_ascii_lowercase()))
}

/// For the pages: resolves the session into the request's extensions (the page components
/// read it from there), sends signed-in users from `/` to `/app` and others the other way.
pub async fn pages(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if req.method() != Method::GET
        || !(path == "/" || path == "/app" || path == paths::ACCOUNT || is_admin_page(path))
    {
        return next.run(req).await;
    }
    let current = match session::authenticate(&state, req.headers()).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    match (path, current) {
        ("/", Some(_)) => Redirect::to("/app").into_response(),
        ("/app", None) => Redirect::to("/").into_response(),
        (paths::ACCOUNT, None) => Redirect::to("/").into_response(),
        (p, None) if is_admin_page(p) => Redirect::to("/").into_response(),
        (p, Some(c)) if is_admin_page(p) && !is_admin(&state, c.session.user.id).await => (
            axum::http::StatusCode::FORBIDDEN,
            axum::response::Html(
                "<!DOCTYPE html><html lang=\"en\"><title>Messenger</title><p>Only administrators may use the admin console. <a href=\"/app\">Back to Messenger</a></p></html>",
            ),
        )
            .into_response(),
        (_, current) => {
            if let Some(c) = current {
                req.extensions_mut().insert(c);
            }
            next.run(req).await
        }
    }
}

/// Whether `user` holds the admin role (a store failure says no).
async fn is_admin(state: &AppState, user: i64) -> bool {
    use crate::server::store::account::AccountStore;
    AccountStore::is_admin(&*state.store, user)
        .await
        .unwrap_or(false)
}

/// Whether `path` is one of the admin console's pages.
fn is_admin_page(path: &str) -> bool {
    path == paths::ADMIN || path.starts_with("/admin/")
}
