//! Shared files: the upload streamed into the media store and shared as a message of its
//! own kind; downloads checked against membership on every request, served safely, by
//! ranges; limits and bad input refused with nothing left behind; retries, deletion and
//! the collector.

use crate::delivery::ack_of;
use crate::helpers::*;
use messenger::protocol::{MessageKind, ServerFrame, SharedFile};
use messenger::server::media::Uploaded;
use serde_json::json;
use std::path::{Path, PathBuf};

/// Uploads `bytes` named `name` into `conv` as `client_id`.
async fn upload(
    app: &TestApp,
    user: &User,
    conv: i64,
    client_id: &str,
    name: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    app.http
        .post(app.url(&format!(
            "/api/conversations/{conv}/files?client_id={client_id}&name={}",
            urlencode(name)
        )))
        .header("Origin", app.origin())
        .bearer_auth(&user.token)
        .body(bytes)
        .send()
        .await
        .expect("upload")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn get(app: &TestApp, user: &User, path: &str, range: Option<&str>) -> reqwest::Response {
    let mut req = app.http.get(app.url(path)).bearer_auth(&user.token);
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    req.send().await.expect("download")
}

fn media_dir(app: &TestApp) -> PathBuf {
    app.dir.path().join("messenger.db.media")
}

/// Every stored object (under objects/ and tmp/).
fn stored(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, y| {
        image::Rgba([(x % 256) as u8, (y % 256) as u8, 40, 255])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgba8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("png");
    out
}

#[tokio::test]
async fn a_file_is_shared_as_a_message_and_only_members_download_it_safely() {
    let app = spawn_app().await;
    let (a, b, c) = (app.guest().await, app.guest().await, app.guest().await);
    let (conv, mut wa, mut wb) = app.dm_live(&a, &b).await;
    let text: Vec<u8> = (0..200_000u32)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    let res = upload(&app, &a, conv, "f-1", "notes <1>.txt", text.clone()).await;
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let up: Uploaded = res.json().await.expect("uploaded");
    assert_eq!(
        (up.conv, up.seq, up.file.name.as_str()),
        (conv, 1, "notes <1>.txt")
    );
    assert_eq!(
        (up.file.size, up.file.mime.as_str()),
        (text.len() as i64, "text/plain")
    );
    // Both sides get it as a message of kind file, in the sequence.
    for ws in [&mut wa, &mut wb] {
        let ServerFrame::Msg(m) = ws.until(|f| matches!(f, ServerFrame::Msg(_))).await else {
            unreachable!()
        };
        assert_eq!((m.seq, m.kind), (1, MessageKind::File));
        let named: SharedFile = serde_json::from_str(&m.body).expect("a file body");
        assert_eq!(named, up.file);
    }
    // The other member downloads it whole, as an attachment that cannot run.
    let path = format!("/api/files/{}", up.file.id);
    let res = get(&app, &b, &path, None).await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert!(h["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"notes _1_.txt\""));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("sandbox"));
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(res.bytes().await.unwrap().as_ref(), text.as_slice());
    // A range, across a chunk boundary; and one outside the file.
    let res = get(&app, &b, &path, Some("bytes=65530-70000")).await;
    assert_eq!(res.status(), 206);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes 65530-70000/{}", text.len())
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), &text[65530..=70000]);
    let res = get(&app, &b, &path, Some(&format!("bytes={}-", text.len()))).await;
    assert_eq!(res.status(), 416);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes */{}", text.len())
    );
    // Someone else gets nothing, not even that it exists; nor does anyone signed out.
    assert_eq!(get(&app, &c, &path, None).await.status(), 404);
    assert_eq!(
        get(&app, &c, &format!("/api/files/{}", up.file.id + 1), None)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.http.get(app.url(&path)).send().await.unwrap().status(),
        401
    );
    // Nor can they upload into a conversation they are not in.
    let res = upload(&app, &c, conv, "f-x", "x.txt", b"hi".to_vec()).await;
    assert_eq!(res.status(), 403);
    // At rest, the stored bytes are sealed: the text is nowhere in them.
    let objects = stored(&media_dir(&app));
    assert_eq!(objects.len(), 1, "{objects:?}");
    let raw = std::fs::read(&objects[0]).unwrap();
    assert!(
        !raw.windows(12).any(|w| w == b"line 100000\n"),
        "the file is stored in the clear"
    );
    // History pages it like any message.
    let page = app.history(conv, &b).await;
    assert_eq!(page.messages[0].kind, MessageKind::File);
}

#[tokio::test]
async fn an_html_file_downloads_and_a_picture_gets_a_thumbnail_and_a_view_copy() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let html = b"<!doctype html><script>document.title='owned'</script>".to_vec();
    let up: Uploaded = upload(&app, &a, conv, "h-1", "page.html", html.clone())
        .await
        .json()
        .await
        .unwrap();
    let res = get(&app, &b, &format!("/api/files/{}", up.file.id), None).await;
    assert_eq!(res.status(), 200);
    assert_ne!(res.headers()["content-type"], "text/html");
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    // A picture has no inline copy unless the server made it.
    assert_eq!(
        get(&app, &b, &format!("/api/files/{}/thumb", up.file.id), None)
            .await
            .status(),
        404
    );

    let photo = png(1200, 600);
    let res = upload(&app, &a, conv, "p-1", "holiday.png", photo.clone()).await;
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let up: Uploaded = res.json().await.unwrap();
    assert_eq!(
        (up.file.mime.as_str(), up.file.picture),
        ("image/png", Some((1200, 600)))
    );
    let res = get(&app, &b, &format!("/api/files/{}/thumb", up.file.id), None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("inline"));
    let thumb = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (320, 160));
    let view = get(&app, &b, &format!("/api/files/{}/view", up.file.id), None).await;
    let view = image::load_from_memory(&view.bytes().await.unwrap()).unwrap();
    assert_eq!((view.width(), view.height()), (1200, 600));
    let original = get(&app, &b, &format!("/api/files/{}", up.file.id), None).await;
    assert_eq!(original.bytes().await.unwrap().as_ref(), photo.as_slice());
}

#[tokio::test]
async fn bad_uploads_get_clear_errors_and_leave_nothing_behind() {
    let app = spawn_app_with(|c| {
        c.media.max_mb = 1;
        c.media.quota_mb = 3;
    })
    .await;
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("empty.txt", Vec::new(), 422, "empty"),
        ("big.bin", vec![7; 1_000_001], 413, "larger than"),
        (
            "fake.png",
            b"<svg onload=alert(1)>".to_vec(),
            422,
            "not a PNG",
        ),
        ("fake.jpg", png(10, 10), 200, ""),
        ("cut.png", png(300, 300)[..400].to_vec(), 422, "damaged"),
        ("  ", b"x".to_vec(), 422, "file name"),
    ];
    for (i, (name, bytes, status, says)) in cases.into_iter().enumerate() {
        let res = upload(&app, &a, conv, &format!("bad-{i}"), name, bytes).await;
        assert_eq!(res.status(), status, "{name}");
        let text = res.text().await.unwrap();
        assert!(text.contains(says), "{name}: {text}");
    }
    // A .jpg whose bytes are a PNG is a PNG (the bytes decide); only it was kept.
    assert_eq!(app.message_count(Some(conv)).await, 1);
    let left = stored(&media_dir(&app));
    assert_eq!(
        left.len(),
        3,
        "the PNG, its view copy and thumbnail only: {left:?}"
    );
    // The quota: three files of 0.9 MB fit in 3 MB, a fourth does not.
    for i in 0..3 {
        let res = upload(
            &app,
            &a,
            conv,
            &format!("q-{i}"),
            "q.bin",
            vec![i as u8; 900_000],
        )
        .await;
        assert_eq!(res.status(), 200, "{i}");
    }
    let res = upload(&app, &a, conv, "q-3", "q.bin", vec![3; 900_000]).await;
    assert_eq!(res.status(), 413);
    assert!(res.text().await.unwrap().contains("delete some"));
    // A client id that is not one.
    let res = upload(&app, &a, conv, "no%20good", "x.txt", b"x".to_vec()).await;
    assert_eq!(res.status(), 422);
    // No name, or no client id, with a large body: the answer, not a cut connection.
    for query in ["client_id=nameless", "name=idless.bin"] {
        let res = app
            .http
            .post(app.url(&format!("/api/conversations/{conv}/files?{query}")))
            .header("Origin", app.origin())
            .bearer_auth(&a.token)
            .body(vec![5u8; 4_000_000])
            .send()
            .await
            .expect("an answer, not a cut connection");
        assert_eq!(res.status(), 422, "{query}");
    }
}

#[tokio::test]
async fn a_cut_off_upload_leaves_no_row_and_no_object() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    // A body that says 2 MB and stops after 300 KB.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(vec![1; 300_000]),
        Err(std::io::Error::other("the network went away")),
    ];
    let res = app
        .http
        .post(app.url(&format!(
            "/api/conversations/{conv}/files?client_id=cut-1&name=a.bin"
        )))
        .header("Origin", app.origin())
        .header("Content-Length", "2000000")
        .bearer_auth(&a.token)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await;
    if let Ok(res) = res {
        assert!(res.status().is_client_error(), "{}", res.status());
    }
    // The server notices the end of the body, then gives the upload up.
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
    for _ in 0..100 {
        tick.tick().await;
        if stored(&media_dir(&app)).is_empty() {
            break;
        }
    }
    assert_eq!(stored(&media_dir(&app)), Vec::<PathBuf>::new());
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM files")
        .fetch_one(&mut app.db().await)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    assert_eq!(app.message_count(Some(conv)).await, 0);
    // The same id again, whole this time, goes through.
    let res = upload(&app, &a, conv, "cut-1", "a.bin", vec![1; 400_000]).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_retry_with_the_same_id_shares_once_and_deleting_the_message_removes_the_file() {
    let app = spawn_app().await;
    let (a, b) = (app.guest().await, app.guest().await);
    let (conv, mut wa, _wb) = app.dm_live(&a, &b).await;
    let first: Uploaded = upload(&app, &a, conv, "r-1", "r.txt", b"hello".to_vec())
        .await
        .json()
        .await
        .unwrap();
    let again = upload(&app, &a, conv, "r-1", "r.txt", b"hello".to_vec()).await;
    assert_eq!(again.status(), 200);
    let again: Uploaded = again.json().await.unwrap();
    assert_eq!(again, first);
    assert_eq!(app.message_count(Some(conv)).await, 1);
    assert_eq!(stored(&media_dir(&app)).len(), 1);

    // Only its sender deletes it; then the object goes and the download is gone.
    wa.send(json!({ "t": "delete", "conv": conv, "client_id": "d-1", "seq": first.seq }))
        .await;
    assert!(ack_of(&mut wa, "d-1").await > first.seq);
    let path = format!("/api/files/{}", first.file.id);
    assert_eq!(get(&app, &b, &path, None).await.status(), 404);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
    for _ in 0..100 {
        tick.tick().await;
        if stored(&media_dir(&app)).is_empty() {
            break;
        }
    }
    assert_eq!(
        stored(&media_dir(&app)),
        Vec::<PathBuf>::new(),
        "the deleted file's object stayed"
    );
    // Its id cannot be used for a new file.
    let res = upload(&app, &a, conv, "r-1", "r.txt", b"hello".to_vec()).await;
    assert_eq!(res.status(), 409);
}

#[tokio::test]
async fn the_collector_takes_uploads_never_shared_and_objects_no_row_names() {
    let app = spawn_app_with(|c| c.media.grace = std::time::Duration::ZERO).await;
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let kept: Uploaded = upload(&app, &a, conv, "k-1", "k.txt", b"keep me".to_vec())
        .await
        .json()
        .await
        .unwrap();
    // A row whose message never committed, and an object nothing names.
    let mut db = app.db().await;
    sqlx::query(
        "INSERT INTO files (conversation_id, uploader_id, client_id, name, mime, size, object, created_at)
         VALUES ($1, $2, 'never', 'n.txt', 'text/plain', 3, 'feedface', 0)",
    )
    .bind(conv)
    .bind(a.me.id)
    .execute(&mut db)
    .await
    .unwrap();
    let stray = media_dir(&app).join("objects/ab/abcdef");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, b"orphan").unwrap();
    let tmp = media_dir(&app).join("tmp/unfinished");
    std::fs::write(&tmp, b"half").unwrap();
    let (files, strays) = app.state.media.collect().await.expect("collected");
    assert_eq!((files, strays), (1, 2));
    assert!(!stray.exists() && !tmp.exists());
    let rows: Vec<String> = sqlx::query_scalar("SELECT client_id FROM files")
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert_eq!(rows, ["k-1"]);
    let res = get(&app, &b, &format!("/api/files/{}", kept.file.id), None).await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"keep me");
}

#[tokio::test]
async fn uploads_per_user_are_limited_across_restarts() {
    let app = spawn_app_with(|c| {
        c.limits.uploads_per_user = "2/1h".parse().expect("allowance");
    })
    .await;
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    for i in 0..2 {
        let res = upload(&app, &a, conv, &format!("u-{i}"), "u.txt", b"u".to_vec()).await;
        assert_eq!(res.status(), 200);
    }
    let res = upload(&app, &a, conv, "u-2", "u.txt", b"u".to_vec()).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let app = app
        .restarted(|c| c.limits.uploads_per_user = "2/1h".parse().expect("allowance"))
        .await;
    let res = upload(&app, &a, conv, "u-3", "u.txt", b"u".to_vec()).await;
    assert_eq!(res.status(), 429, "a restart does not reset the limit");
    // A refused upload does not count: another user is unaffected.
    let res = upload(&app, &b, conv, "v-1", "v.txt", b"v".to_vec()).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn uploads_stop_above_the_media_disk_floor() {
    // A floor above any disk's free space: every upload is refused before it is read.
    let app = spawn_app_with(|c| c.media.floor_mb = 1 << 40).await;
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let res = upload(&app, &a, conv, "full-1", "f.txt", b"no room".to_vec()).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert!(res.text().await.unwrap().contains("storage is full"));
    assert_eq!(stored(&media_dir(&app)), Vec::<PathBuf>::new());
    assert_eq!(app.message_count(Some(conv)).await, 0);
}

#[tokio::test]
async fn expiry_and_account_deletion_take_the_files_with_their_messages() {
    let day = 86_400_000;
    let app =
        spawn_app_with(|c| c.store.retention = Some(std::time::Duration::from_secs(30 * 86_400)))
            .await;
    // Expiry: a file shared 31 days ago goes with its message.
    let (a, b) = (app.guest().await, app.guest().await);
    let conv = app.dm(&a, &b).await;
    let old: Uploaded = upload(&app, &a, conv, "old-1", "old.txt", b"old news".to_vec())
        .await
        .json()
        .await
        .unwrap();
    let kept: Uploaded = upload(&app, &a, conv, "new-1", "new.txt", b"fresh".to_vec())
        .await
        .json()
        .await
        .unwrap();
    let now = messenger::server::store::now_ms();
    let mut db = app.db().await;
    sqlx::query("UPDATE messages SET created_at = $1 WHERE conversation_id = $2 AND seq = $3")
        .bind(now - 31 * day)
        .bind(conv)
        .bind(old.seq)
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("UPDATE files SET created_at = $1 WHERE id = $2")
        .bind(now - 31 * day)
        .bind(old.file.id)
        .execute(&mut db)
        .await
        .unwrap();
    app.state.retention.run(now).await.expect("retention");
    app.state.media.collect_files().await.expect("collected");
    assert_eq!(
        get(&app, &b, &format!("/api/files/{}", old.file.id), None)
            .await
            .status(),
        404
    );
    let res = get(&app, &b, &format!("/api/files/{}", kept.file.id), None).await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"fresh");
    assert_eq!(
        stored(&media_dir(&app)).len(),
        1,
        "only the fresh file's object stays"
    );

    // Deletion of the account that shared it: its file goes too, without waiting for the
    // collector's next pass.
    app.signup_cookie("sharer", "a long enough password").await;
    let sharer: serde_json::Value = app
        .post(
            "/api/token",
            None,
            json!({ "username": "sharer", "password": "a long enough password" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let token = sharer["token"].as_str().unwrap().to_owned();
    let res = app
        .post(
            "/api/dm",
            Some(&token),
            json!({ "username": b.me.username }),
        )
        .await;
    let dm = res.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let res = app
        .http
        .post(app.url(&format!(
            "/api/conversations/{dm}/files?client_id=gone-1&name=gone.txt"
        )))
        .header("Origin", app.origin())
        .bearer_auth(&token)
        .body(b"soon gone".to_vec())
        .send()
        .await
        .unwrap();
    let gone: Uploaded = res.json().await.unwrap();
    assert_eq!(stored(&media_dir(&app)).len(), 2);
    let res = app
        .form(
            "/api/delete-account",
            Some(&token),
            &[("password", "a long enough password"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        get(&app, &b, &format!("/api/files/{}", gone.file.id), None)
            .await
            .status(),
        404
    );
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
    for _ in 0..100 {
        tick.tick().await;
        if stored(&media_dir(&app)).len() == 1 {
            break;
        }
    }
    assert_eq!(
        stored(&media_dir(&app)).len(),
        1,
        "the deleted account's file stayed"
    );
}
