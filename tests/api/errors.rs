//! Input the server cannot read gets the same answer as any refusal: the `{"error",
//! "message"}` body with the status of its code.

use crate::helpers::spawn_app;
use serde_json::Value;

/// The status and the error code of a response.
async fn refusal(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.expect("a JSON error body");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (status, body["error"].as_str().expect("a code").to_owned())
}

#[tokio::test]
async fn unreadable_bodies_ids_and_queries_are_refused_with_the_error_body() {
    let app = spawn_app().await;
    let a = app.guest().await;
    let post = |path: &str, content_type: &str, body: &'static str| {
        app.http
            .post(app.url(path))
            .header("Origin", app.origin())
            .header("Content-Type", content_type)
            .bearer_auth(&a.token)
            .body(body)
            .send()
    };
    // JSON endpoints: not JSON, and JSON that does not fit.
    let res = post("/api/dm", "text/plain", "bob").await.expect("post");
    assert_eq!(refusal(res).await, (415, "unsupported_media_type".into()));
    let res = post("/api/dm", "application/json", "{\"username\":")
        .await
        .expect("post");
    assert_eq!(refusal(res).await, (422, "invalid".into()));
    let res = post("/api/groups", "application/json", "{\"name\": 7}")
        .await
        .expect("post");
    assert_eq!(refusal(res).await, (422, "invalid".into()));
    // Form endpoints (server functions): JSON is not a form.
    let res = post(
        "/api/signup",
        "application/json",
        "{\"username\":\"ann\",\"password\":\"long enough\"}",
    )
    .await
    .expect("post");
    assert_eq!(refusal(res).await, (415, "unsupported_media_type".into()));
    // An id that is not a number is no address at all; a query that does not fit is invalid.
    let res = post("/api/contacts/abc/accept", "application/json", "{}")
        .await
        .expect("post");
    assert_eq!(refusal(res).await, (404, "not_found".into()));
    let res = app
        .http
        .get(app.url("/api/rooms?after=first"))
        .bearer_auth(&a.token)
        .send()
        .await
        .expect("get");
    assert_eq!(refusal(res).await, (422, "invalid".into()));
    let res = app
        .http
        .get(app.url("/api/history?conv=x"))
        .bearer_auth(&a.token)
        .send()
        .await
        .expect("get");
    assert_eq!(refusal(res).await, (422, "invalid".into()));
}
