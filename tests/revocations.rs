//! Revocations, as an operator uses them after a leak: by object key, key prefix and
//! principal, on every path that hands out or serves an object; within one process without
//! `[fleet]`, and across two replicas through a real `redis-server` with `[fleet]` (pub/sub
//! and a periodic re-read), including Redis going away and coming back.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

fn enc(s: &str) -> String {
    edgesign::sign::encoding::uri_encode(s.as_bytes(), true)
}

/// The config after `[server] listen`: an s3s-fs origin `docs` behind an org redirect route
/// `/r/` and an org stream route `/s/`, the test API keys, the compatible APIs, and `extra`.
fn config(origin: &S3Origin, extra: &str) -> String {
    format!(
        "public_url = \"http://edge.example\"\n{}[[routes]]\nprefix = \"/r/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"org\"\n[[routes]]\nprefix = \"/s/\"\norigin = \"docs\"\nmode = \"stream\"\naccess = \"org\"\n{}[compat]\nfiles_origin = \"docs\"\nfiles_key_prefix = \"acme/files/\"\n{extra}",
        s3_origin_toml(origin, "1h"),
        api_keys_toml()
    )
}

async fn revoke(base: &str, key: &str, body: serde_json::Value) -> Got {
    post(
        &format!("{base}/v1/revocations"),
        &body.to_string(),
        &[("authorization", &format!("Bearer {key}"))],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_prefix_or_principal_is_refused_everywhere_in_this_process() {
    let origin = s3_origin().await;
    for k in [
        "acme/a.txt",
        "acme/b.txt",
        "acme/leaked/1.txt",
        "acme/files/f1",
    ] {
        origin.put(k, b"content");
    }
    let edge = spawn_with("revoke-process", &config(&origin, ""), &[]);
    let base = edge.base.clone();
    let acme = [("x-api-key", SK_ACME)];
    assert_eq!(
        get(&format!("{base}/r/acme/a.txt"), &acme).await.status,
        302
    );

    // An org caller revokes one of its objects.
    let made = revoke(
        &base,
        SK_ACME,
        json!({"origin": "docs", "key": "acme/a.txt", "reason": "leaked"}),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text());
    let made = made.json();
    assert_eq!(made["scope"], "process");
    assert!(made["id"].as_str().unwrap().starts_with("rev_"));
    assert!(made["effective_by"].as_str().unwrap().ends_with('Z'));

    // Every path refuses it: stable link (even though it was cached), another spelling, stream
    // mode, a stale URL's rescue, /proxy/file, and the signing API.
    let stale = botocore_presign(&origin.endpoint(), "acme/a.txt", "20130524T000000Z", 3600);
    let query = stale.split_once('?').unwrap().1;
    for (what, got) in [
        (
            "stable link",
            get(&format!("{base}/r/acme/a.txt"), &acme).await,
        ),
        (
            "dot segments",
            get(&format!("{base}/r/acme/x/../a.txt"), &acme).await,
        ),
        ("stream", get(&format!("{base}/s/acme/a.txt"), &acme).await),
        (
            "rescue",
            get(&format!("{base}/r/acme/a.txt?{query}"), &acme).await,
        ),
        (
            "proxy/file",
            get(
                &format!("{base}/proxy/file?presigned_url={}", enc(&stale)),
                &acme,
            )
            .await,
        ),
        (
            "api",
            post(
                &format!("{base}/v1/sign"),
                r#"{"origin": "docs", "key": "acme/a.txt"}"#,
                &acme,
            )
            .await,
        ),
    ] {
        assert_eq!(got.status, 403, "{what}: {}", got.text());
        assert!(
            got.text().contains("revoked") || got.text().contains("AccessDenied"),
            "{what}: {}",
            got.text()
        );
    }
    assert_eq!(
        get(&format!("{base}/r/acme/x/../a.txt"), &acme)
            .await
            .json()["code"],
        "revoked"
    );
    // Its neighbour is untouched.
    assert_eq!(
        get(&format!("{base}/r/acme/b.txt"), &acme).await.status,
        302
    );

    // An org caller cannot reach outside its org; an admin can, and revokes a prefix.
    let outside = revoke(
        &base,
        SK_ACME,
        json!({"origin": "docs", "prefix": "globex/"}),
    )
    .await;
    assert_eq!(outside.status, 403, "{}", outside.text());
    let prefix = revoke(
        &base,
        SK_ADMIN,
        json!({"origin": "docs", "prefix": "acme/leaked/"}),
    )
    .await;
    assert_eq!(prefix.status, 201, "{}", prefix.text());
    assert_eq!(
        get(&format!("{base}/r/acme/leaked/1.txt"), &acme)
            .await
            .status,
        403
    );
    let files = post(&format!("{base}/v1/files/f1/signed-url"), "{}", &acme).await;
    assert_eq!(files.status, 200, "{}", files.text());

    // Listing: the org caller sees its org's; bad requests are 400.
    let listed = get(&format!("{base}/v1/revocations"), &acme).await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let listed = listed.json();
    assert_eq!(
        listed["revocations"].as_array().unwrap().len(),
        2,
        "{listed}"
    );
    for bad in [
        json!({"origin": "docs"}),
        json!({"origin": "docs", "key": "a", "prefix": "b"}),
        json!({"origin": "nowhere", "key": "acme/a.txt"}),
        json!({"origin": "docs", "key": "acme/../../etc/passwd"}),
        json!({"origin": "docs", "key": "acme/a.txt", "expires_in": 0}),
        // The whole origin by accident, a key itself instead of its hash, the caller itself.
        json!({"origin": "docs", "prefix": "/"}),
        json!({"principal": SK_ACME}),
        json!({"principal": hex::encode(edgesign::auth::api_key::hash(SK_ADMIN))}),
    ] {
        assert_eq!(
            revoke(&base, SK_ADMIN, bad.clone()).await.status,
            400,
            "{bad}"
        );
    }
    assert_eq!(
        get(&format!("{base}/v1/revocations"), &[]).await.status,
        401
    );

    // Deleting restores access.
    let id = made["id"].as_str().unwrap();
    let deleted = send(
        "DELETE",
        &format!("{base}/v1/revocations/{id}"),
        &[("x-api-key", SK_ACME)],
    )
    .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    assert_eq!(
        get(&format!("{base}/r/acme/a.txt"), &acme).await.status,
        302
    );
    let again = send(
        "DELETE",
        &format!("{base}/v1/revocations/{id}"),
        &[("x-api-key", SK_ACME)],
    )
    .await;
    assert_eq!(again.status, 404);

    // Another org's revocation is one the caller cannot find.
    let admins = revoke(
        &base,
        SK_ADMIN,
        json!({"origin": "docs", "key": "globex/x.txt"}),
    )
    .await;
    let admins = admins.json()["id"].as_str().unwrap().to_owned();
    let hidden = send(
        "DELETE",
        &format!("{base}/v1/revocations/{admins}"),
        &[("x-api-key", SK_ACME)],
    )
    .await;
    assert_eq!(hidden.status, 404);

    // A revoked principal is refused for everything it asks; others are not. The hash may be
    // pasted in upper case, as some tools print it.
    let acme_hash = hex::encode(edgesign::auth::api_key::hash(SK_ACME)).to_ascii_uppercase();
    let principal = revoke(
        &base,
        SK_ADMIN,
        json!({"principal": acme_hash, "expires_in": 2}),
    )
    .await;
    assert_eq!(principal.status, 201, "{}", principal.text());
    assert_eq!(
        get(&format!("{base}/r/acme/b.txt"), &acme).await.status,
        403
    );
    assert_eq!(
        get(&format!("{base}/r/acme/b.txt"), &[("x-api-key", SK_ADMIN)])
            .await
            .status,
        302
    );
    // …until the revocation lapses (expires_in: 2).
    let deadline = edgesign::clock::instant() + Duration::from_secs(5);
    loop {
        if get(&format!("{base}/r/acme/b.txt"), &acme).await.status == 302 {
            break;
        }
        assert!(
            edgesign::clock::instant() < deadline,
            "the revocation never lapsed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_revocations_through_redis_within_the_sync_interval() {
    let origin = s3_origin().await;
    origin.put("acme/a.txt", b"content");
    let redis = Redis::start(None);
    let fleet = format!(
        "[fleet]\nredis_url = \"{}\"\nkey_prefix = \"edgesign-test:\"\nsync_interval = \"1s\"\n",
        redis.url()
    );
    let a = spawn_with("fleet-a", &config(&origin, &fleet), &[]);
    let b = spawn_with("fleet-b", &config(&origin, &fleet), &[]);
    let acme = [("x-api-key", SK_ACME)];
    for edge in [&a, &b] {
        assert!(
            edge.wait_for_log("connected to Redis", Duration::from_secs(10))
                .await,
            "{}",
            edge.log()
        );
        assert_eq!(
            get(&format!("{}/r/acme/a.txt", edge.base), &acme)
                .await
                .status,
            302
        );
    }

    let made = revoke(
        &a.base,
        SK_ACME,
        json!({"origin": "docs", "key": "acme/a.txt"}),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text());
    assert_eq!(made.json()["scope"], "fleet");
    let start = edgesign::clock::instant();
    assert_eq!(
        get(&format!("{}/r/acme/a.txt", a.base), &acme).await.status,
        403
    );
    // The other replica applies it within sync_interval (1 s; pub/sub usually sooner).
    loop {
        if get(&format!("{}/r/acme/a.txt", b.base), &acme).await.status == 403 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "replica b still serves a revoked key after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listed = get(&format!("{}/v1/revocations", b.base), &acme)
        .await
        .json();
    assert_eq!(listed["scope"], "fleet");
    assert_eq!(listed["revocations"].as_array().unwrap().len(), 1);

    // An entry nobody can read is not enforced, and says so.
    let garbage = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "HSET",
            "edgesign-test:revocations",
            "rev_bad",
            "not json",
        ])
        .output()
        .expect("redis-cli");
    assert!(garbage.status.success());
    assert!(
        b.wait_for_log("a stored revocation cannot be read", Duration::from_secs(5))
            .await,
        "{}",
        b.log()
    );
    assert!(metric(&b.base, r#"edgesign_fleet_errors_total{op="parse"}"#).await >= 1.0);
    assert_eq!(
        get(&format!("{}/r/acme/a.txt", b.base), &acme).await.status,
        403
    );

    // Redis goes away: the last known set stays in force, /readyz stays 200, writes are 503
    // and the metric says so.
    let port = redis.port;
    drop(redis);
    assert!(
        b.wait_for_log("cannot read revocations from Redis", Duration::from_secs(5))
            .await,
        "{}",
        b.log()
    );
    assert_eq!(
        get(&format!("{}/r/acme/a.txt", b.base), &acme).await.status,
        403
    );
    assert_eq!(get(&format!("{}/readyz", b.base), &[]).await.status, 200);
    assert_eq!(metric(&b.base, "edgesign_fleet_up").await, 0.0);
    let refused = revoke(
        &a.base,
        SK_ADMIN,
        json!({"origin": "docs", "key": "acme/z.txt"}),
    )
    .await;
    assert_eq!(refused.status, 503, "{}", refused.text());

    // It comes back (empty: nothing was persisted): both replicas reconnect by themselves.
    let _redis = Redis::start(Some(port));
    let deadline = edgesign::clock::instant() + Duration::from_secs(15);
    loop {
        let made = revoke(
            &a.base,
            SK_ADMIN,
            json!({"origin": "docs", "prefix": "acme/"}),
        )
        .await;
        if made.status == 201 {
            break;
        }
        assert!(
            edgesign::clock::instant() < deadline,
            "no reconnection: {} {}",
            made.status,
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = edgesign::clock::instant() + Duration::from_secs(5);
    while metric(&b.base, "edgesign_fleet_up").await != 1.0 {
        assert!(edgesign::clock::instant() < deadline, "{}", b.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        get(&format!("{}/r/acme/b.txt", b.base), &acme).await.status,
        403
    );
    assert!(!a.log().contains(SK_ACME) && !a.log().contains(SK_ADMIN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_at_start_up_does_not_stop_serving() {
    let origin = s3_origin().await;
    origin.put("acme/a.txt", b"content");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fleet = format!("[fleet]\nredis_url = \"redis://127.0.0.1:{closed}/0\"\n");
    let edge = spawn_with("fleet-down", &config(&origin, &fleet), &[]);
    assert_eq!(
        get(
            &format!("{}/r/acme/a.txt", edge.base),
            &[("x-api-key", SK_ACME)]
        )
        .await
        .status,
        302
    );
    assert_eq!(get(&format!("{}/readyz", edge.base), &[]).await.status, 200);
    assert!(
        edge.wait_for_log("cannot reach Redis", Duration::from_secs(5))
            .await,
        "{}",
        edge.log()
    );
    let m = parse_metrics(&get(&format!("{}/metrics", edge.base), &[]).await.text());
    assert_eq!(m["edgesign_fleet_up"], 0.0);
    assert!(m[r#"edgesign_fleet_errors_total{op="connect"}"#] >= 1.0);
}
