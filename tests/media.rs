//! The media store in an S3-compatible bucket: the real binary with `--media-store s3://...`
//! against moto's S3 server (a local stand-in, installed by `make test-tools` in
//! target/moto), started by the test on a free port. Large files go up in parts and come
//! back whole and by ranges; deleting the message removes the object from the bucket.

use serde_json::json;
use std::{process::Command, time::Duration};

mod process;
use process::*;

/// moto's S3 server on `port`, killed when the test ends.
fn moto(port: u16) -> Killed {
    let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/target/moto/bin/moto_server");
    assert!(
        std::path::Path::new(bin).exists(),
        "{bin} is missing: run `make test-tools` (it installs moto in target/moto)"
    );
    Killed(
        Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto starts"),
    )
}

/// The keys under `prefix` in `bucket`.
async fn keys(http: &reqwest::Client, s3: &str, bucket: &str, prefix: &str) -> Vec<String> {
    let xml = http
        .get(format!("{s3}/{bucket}?list-type=2&prefix={prefix}"))
        .send()
        .await
        .expect("listing")
        .text()
        .await
        .expect("xml");
    xml.split("<Key>")
        .skip(1)
        .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_owned()))
        .collect()
}

#[tokio::test]
async fn files_live_in_an_s3_bucket_when_the_operator_says_so() {
    let http = reqwest::Client::new();
    let s3_port = free_port();
    let _moto = moto(s3_port);
    let s3 = format!("http://127.0.0.1:{s3_port}");
    let mut up = false;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for _ in 0..200 {
        tick.tick().await;
        if http.get(&s3).send().await.is_ok() {
            up = true;
            break;
        }
    }
    assert!(up, "moto did not come up");
    let res = http
        .put(format!("{s3}/media-test"))
        .send()
        .await
        .expect("bucket");
    assert!(res.status().is_success(), "{}", res.status());

    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let _server = Killed(server(
        port,
        &dir.path().join("messenger.db"),
        &[
            ("MESSENGER_MEDIA_STORE", "s3://media-test/shared"),
            ("AWS_ENDPOINT", &s3),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ],
        None,
    ));
    let base = format!("http://127.0.0.1:{port}");
    wait_up(&http, &base).await;
    let (a, b) = (
        guest_token(&http, &base).await,
        guest_token(&http, &base).await,
    );
    let b_name: serde_json::Value = http
        .get(format!("{base}/api/session"))
        .bearer_auth(&b)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let conv = http
        .post(format!("{base}/api/dm"))
        .bearer_auth(&a)
        .json(&json!({ "username": b_name["user"]["username"] }))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .expect("a conversation");

    // 12 MB: three parts of the multipart upload.
    let file: Vec<u8> = (0..12_000_000u32).map(|i| (i % 251) as u8).collect();
    let res = http
        .post(format!(
            "{base}/api/conversations/{conv}/files?client_id=s3-1&name=big.bin"
        ))
        .bearer_auth(&a)
        .body(file.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let up: serde_json::Value = res.json().await.unwrap();
    let id = up["file"]["id"].as_i64().unwrap();
    let stored = keys(&http, &s3, "media-test", "shared/objects/").await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(keys(&http, &s3, "media-test", "shared/tmp/")
        .await
        .is_empty());

    let whole = http
        .get(format!("{base}/api/files/{id}"))
        .bearer_auth(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    assert!(whole.bytes().await.unwrap().as_ref() == file.as_slice());
    let part = http
        .get(format!("{base}/api/files/{id}"))
        .bearer_auth(&b)
        .header("Range", "bytes=5999990-6000009")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.bytes().await.unwrap().as_ref(),
        &file[5_999_990..6_000_010]
    );

    // Deleted by its sender: gone from the bucket.
    let mut ws = socket(port, &a).await;
    let _hello = frame(&mut ws).await;
    send(
        &mut ws,
        json!({ "t": "delete", "conv": conv, "client_id": "del-1", "seq": up["seq"] }),
    )
    .await;
    let mut gone = false;
    for _ in 0..100 {
        tick.tick().await;
        if keys(&http, &s3, "media-test", "shared/objects/")
            .await
            .is_empty()
        {
            gone = true;
            break;
        }
    }
    assert!(gone, "the deleted file's object stayed in the bucket");
    let after = http
        .get(format!("{base}/api/files/{id}"))
        .bearer_auth(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 404);
}
