//! Display pictures: real files of every accepted type, malformed, oversized and mismatched
//! ones, what is stored and served, and who may see it.

use crate::helpers::{spawn_app, TestApp, User};
use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};
use messenger::protocol::{ServerFrame, Status, PICTURE_SIZE};
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Cursor;

/// A `w` x `h` picture with a gradient, encoded as `format`.
fn picture(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
    let img = RgbaImage::from_fn(w, h, |x, y| {
        Rgba([(x * 7 % 256) as u8, (y * 5 % 256) as u8, 120, 255])
    });
    let img = match format {
        ImageFormat::Jpeg => DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(img).into_rgb8()),
        _ => DynamicImage::ImageRgba8(img),
    };
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format)
        .expect("encodes");
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out
}

/// A well-formed PNG (correct checksums) whose header claims `w` x `h` pixels of the given
/// bit depth and colour type, with one tiny block of image data: the shape of a
/// decompression bomb, without the bomb.
fn png_claiming(w: u32, h: u32, bit_depth: u8, color_type: u8) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[bit_depth, color_type, 0, 0, 0]);
    // A zlib stream holding one stored block with a single zero byte.
    let idat = [
        0x78, 0x01, 0x01, 0x01, 0x00, 0xFE, 0xFF, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &idat));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// A JPEG with a comment segment holding `text` right after the start marker (where
/// cameras put EXIF data): it must not survive the re-encoding.
fn jpeg_with_comment(text: &str) -> Vec<u8> {
    let jpeg = picture(120, 80, ImageFormat::Jpeg);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&((text.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&jpeg[2..]);
    out
}

async fn upload(app: &TestApp, u: &User, bytes: Vec<u8>, content_type: &str) -> reqwest::Response {
    app.http
        .put(app.url("/api/me/picture"))
        .header("Origin", app.origin())
        .header("Content-Type", content_type)
        .bearer_auth(&u.token)
        .body(bytes)
        .send()
        .await
        .expect("upload")
}

/// Uploads and expects success; returns the new version.
async fn set_picture(app: &TestApp, u: &User, bytes: Vec<u8>) -> String {
    let res = upload(app, u, bytes, "image/png").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    body["picture"].as_str().expect("a version").to_owned()
}

/// Uploads and expects a refusal with this status and a message containing `says`.
async fn refused(app: &TestApp, u: &User, bytes: Vec<u8>, status: u16, says: &str) {
    let res = upload(app, u, bytes, "image/png").await;
    assert_eq!(res.status(), status);
    let body: Value = res.json().await.expect("a JSON error");
    let message = body["message"].as_str().expect("a message");
    assert!(message.contains(says), "{message:?} should say {says:?}");
}

async fn fetch(
    app: &TestApp,
    viewer: &User,
    owner: &User,
    version: Option<&str>,
) -> reqwest::Response {
    let mut path = format!("/api/users/{}/picture", owner.me.id);
    if let Some(v) = version {
        path.push_str(&format!("?v={v}"));
    }
    app.call(Method::GET, &path, &viewer.token, None).await
}

fn presence_picture(f: &ServerFrame, user: i64) -> Option<Option<String>> {
    match f {
        ServerFrame::Presence { user: u, presence } if *u == user => Some(presence.picture.clone()),
        _ => None,
    }
}

#[tokio::test]
async fn an_uploaded_picture_is_re_encoded_stripped_and_shown_to_contacts_only() {
    let app = spawn_app().await;
    let (ann, bob, eve) = (app.guest().await, app.guest().await, app.guest().await);
    app.befriend(&ann, &bob).await;
    let _ann_ws = app.online(&ann).await;
    let mut bob_ws = app.online(&bob).await;

    let version = set_picture(&app, &ann, jpeg_with_comment("secret-gps-location")).await;
    let seen = bob_ws
        .until(|f| presence_picture(f, ann.me.id).flatten().is_some())
        .await;
    assert_eq!(
        presence_picture(&seen, ann.me.id),
        Some(Some(version.clone()))
    );

    let res = fetch(&app, &bob, &ann, Some(&version)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert!(res.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let png = res.bytes().await.expect("bytes").to_vec();
    assert_eq!(image::guess_format(&png).ok(), Some(ImageFormat::Png));
    let shown = image::load_from_memory(&png).expect("a picture");
    assert_eq!(
        (shown.width(), shown.height()),
        (PICTURE_SIZE, PICTURE_SIZE)
    );
    assert!(
        !png.windows(6).any(|w| w == b"secret"),
        "the upload's metadata survived"
    );
    // Without the current version it is served but not cached for good.
    let res = fetch(&app, &bob, &ann, Some("0000")).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("no-cache"));

    // The owner sees it; a stranger does not, nor does a contact the owner blocked.
    assert_eq!(fetch(&app, &ann, &ann, None).await.status(), 200);
    assert_eq!(fetch(&app, &eve, &ann, None).await.status(), 404);
    let res = app
        .post(
            &format!("/api/contacts/{}/block", bob.me.id),
            Some(&ann.token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(fetch(&app, &bob, &ann, None).await.status(), 404);
}

#[tokio::test]
async fn every_accepted_type_is_read_from_the_bytes_not_the_declared_type() {
    let app = spawn_app().await;
    let ann = app.guest().await;
    let mut versions = Vec::new();
    for (format, declared) in [
        (ImageFormat::Png, "image/jpeg"),
        (ImageFormat::Jpeg, "image/png"),
        (ImageFormat::Gif, "image/webp"),
        (ImageFormat::WebP, "application/octet-stream"),
    ] {
        let res = upload(&app, &ann, picture(200, 150, format), declared).await;
        assert_eq!(res.status(), 200, "{format:?} sent as {declared}");
        let body: Value = res.json().await.expect("json");
        versions.push(body["picture"].as_str().expect("a version").to_owned());
        let png = fetch(&app, &ann, &ann, None)
            .await
            .bytes()
            .await
            .expect("bytes");
        let shown = image::load_from_memory_with_format(&png, ImageFormat::Png).expect("a PNG");
        assert_eq!(
            (shown.width(), shown.height()),
            (PICTURE_SIZE, PICTURE_SIZE)
        );
    }
    // The version follows the stored pixels: the PNG and the (lossless) WebP of the same
    // picture are the same picture; the lossy JPEG is not.
    assert_eq!(versions[0], versions[3]);
    assert_ne!(versions[0], versions[1]);
}

#[tokio::test]
async fn malformed_oversized_and_mismatched_files_are_refused_and_the_picture_kept() {
    let app = spawn_app().await;
    let ann = app.guest().await;
    let version = set_picture(&app, &ann, picture(64, 64, ImageFormat::Png)).await;

    refused(&app, &ann, Vec::new(), 422, "upload was empty").await;
    // Not a picture at all, whatever it claims to be.
    refused(
        &app,
        &ann,
        b"<html><script>alert(1)</script></html>".to_vec(),
        422,
        "not a PNG, JPEG, GIF or WebP",
    )
    .await;
    refused(
        &app,
        &ann,
        br#"<svg xmlns="http://www.w3.org/2000/svg"></svg>"#.to_vec(),
        422,
        "not a PNG",
    )
    .await;
    // A picture type that is not taken.
    let mut bmp = b"BM".to_vec();
    bmp.extend([0u8; 100]);
    refused(&app, &ann, bmp, 422, "BMP pictures are not supported").await;
    // Cut short in the middle of its pixels.
    let png = picture(300, 300, ImageFormat::Png);
    refused(&app, &ann, png[..png.len() / 2].to_vec(), 422, "damaged").await;
    let jpeg = picture(300, 300, ImageFormat::Jpeg);
    refused(&app, &ann, jpeg[..40].to_vec(), 422, "damaged").await;
    // Huge dimensions in a tiny file: refused from the header, nothing decoded.
    refused(
        &app,
        &ann,
        png_claiming(100_000, 100_000, 8, 6),
        422,
        "100000 x 100000 pixels",
    )
    .await;
    refused(
        &app,
        &ann,
        png_claiming(5000, 10, 8, 2),
        422,
        "the most is 4096 x 4096",
    )
    .await;
    // Within the sides but more than the decoder may allocate (16-bit RGBA: 128 MiB).
    refused(
        &app,
        &ann,
        png_claiming(4096, 4096, 16, 6),
        422,
        "too large to decode",
    )
    .await;
    // Bigger than any upload may be.
    let mut big = picture(10, 10, ImageFormat::Png);
    big.resize(6 * 1024 * 1024, 0);
    refused(&app, &ann, big, 413, "larger than 5 MB").await;

    let res = app
        .call(Method::GET, "/api/contacts", &ann.token, None)
        .await;
    assert_eq!(res.status(), 200);
    let mut ws = app.connect(&ann).await;
    match ws.hello().await {
        ServerFrame::Hello { picture, .. } => assert_eq!(picture, Some(version)),
        other => panic!("not a hello: {other:?}"),
    }
}

#[tokio::test]
async fn a_picture_follows_presence_offline_appear_offline_and_removal() {
    let app = spawn_app().await;
    let (ann, bob) = (app.guest().await, app.guest().await);
    app.befriend(&ann, &bob).await;
    let version = set_picture(&app, &ann, picture(40, 40, ImageFormat::Png)).await;
    let mut bob_ws = app.online(&bob).await;

    // Online: the contact's entry carries the picture.
    let mut ann_ws = app.online(&ann).await;
    let seen = bob_ws
        .until(|f| presence_picture(f, ann.me.id).is_some())
        .await;
    assert_eq!(
        presence_picture(&seen, ann.me.id),
        Some(Some(version.clone()))
    );

    // Appearing offline hides it like the personal message; a new picture set meanwhile is
    // not announced (it would give the user away).
    let res = app
        .call(
            Method::PATCH,
            "/api/me",
            &ann.token,
            Some(json!({ "status": "offline" })),
        )
        .await;
    assert_eq!(res.status(), 200);
    let seen = bob_ws
        .until(|f| presence_picture(f, ann.me.id).is_some())
        .await;
    assert_eq!(presence_picture(&seen, ann.me.id), Some(None));
    let hidden = set_picture(&app, &ann, picture(41, 40, ImageFormat::Png)).await;
    // The owner's other tabs hear of it.
    let mine = ann_ws
        .until(|f| matches!(f, ServerFrame::MyStatus { picture: Some(v), .. } if *v == hidden))
        .await;
    assert!(matches!(
        mine,
        ServerFrame::MyStatus {
            status: Status::Offline,
            ..
        }
    ));
    let res = app
        .call(
            Method::PATCH,
            "/api/me",
            &ann.token,
            Some(json!({ "status": "online" })),
        )
        .await;
    assert_eq!(res.status(), 200);
    let frames = bob_ws
        .frames_until(|f| presence_picture(f, ann.me.id).flatten().is_some())
        .await;
    let pictures: Vec<_> = frames
        .iter()
        .filter_map(|f| presence_picture(f, ann.me.id))
        .collect();
    assert_eq!(pictures, vec![Some(hidden)], "nothing leaked while offline");

    // Removed: back to the default for everyone.
    let res = app
        .call(Method::DELETE, "/api/me/picture", &ann.token, None)
        .await;
    assert_eq!(res.status(), 200);
    let seen = bob_ws
        .until(|f| presence_picture(f, ann.me.id).is_some())
        .await;
    assert_eq!(presence_picture(&seen, ann.me.id), Some(None));
    assert_eq!(fetch(&app, &bob, &ann, None).await.status(), 404);
}
