//! The fleet-wide rate limit, as an operator running two replicas sees it: one budget per
//! principal across both (GCRA in a real `redis-server`), `Retry-After` from the script's
//! answer, and `on_redis_error` when Redis is stopped mid-run and started again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

mod support;

use std::time::Duration;

use support::*;

/// Two API keys, an org redirect route `/r/` over an s3s-fs origin, `[rate_limit]` as
/// given, and `extra` (the `[fleet]` table).
fn config(origin: &S3Origin, per_second: f64, burst: u32, extra: &str) -> String {
    format!(
        "{}[[routes]]\nprefix = \"/r/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"org\"\n{}[rate_limit]\nper_second = {per_second}\nburst = {burst}\n{extra}",
        s3_origin_toml(origin, "1h"),
        api_keys_toml()
    )
}

fn fleet(redis: &Redis, on_redis_error: &str) -> String {
    format!(
        "[fleet]\nredis_url = \"{}\"\nkey_prefix = \"edgesign-test:\"\nsync_interval = \"200ms\"\non_redis_error = \"{on_redis_error}\"\n",
        redis.url()
    )
}

async fn connected(edge: &Spawned) {
    assert!(
        edge.wait_for_log("connected to Redis", Duration::from_secs(10))
            .await,
        "{}",
        edge.log()
    );
}

async fn fetch(edge: &Spawned, key: &str) -> Got {
    get(
        &format!("{}/r/acme/a.txt", edge.base),
        &[("x-api-key", key)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_budget_per_principal() {
    let origin = s3_origin().await;
    origin.put("acme/a.txt", b"content");
    let redis = Redis::start(None);
    // One token per 10 s, 3 at once: a budget that cannot refill during the test.
    let a = spawn_with(
        "limit-a",
        &config(&origin, 0.1, 3, &fleet(&redis, "allow")),
        &[],
    );
    let b = spawn_with(
        "limit-b",
        &config(&origin, 0.1, 3, &fleet(&redis, "allow")),
        &[],
    );
    connected(&a).await;
    connected(&b).await;

    let mut statuses = Vec::new();
    let mut retry_after = Vec::new();
    for edge in [&a, &b, &a, &b, &a, &b, &a, &b] {
        let got = fetch(edge, SK_ACME).await;
        if got.status == 429 {
            assert_eq!(got.json()["code"], "rate_limit_exceeded", "{}", got.text());
            retry_after.push(got.header("retry-after").parse::<u64>().unwrap());
        }
        statuses.push(got.status.as_u16());
    }
    // Burst 3 across both replicas, not 3 each: each one alone would have admitted all four
    // of its requests but one.
    assert_eq!(statuses, [302, 302, 302, 429, 429, 429, 429, 429]);
    // The script's answer: the next token frees 10 s after the first was taken.
    for r in &retry_after {
        assert!((9..=10).contains(r), "Retry-After {r}");
    }
    // The other principal has a budget of its own.
    assert_eq!(fetch(&b, SK_ADMIN).await.status, 302);

    // The budget's Redis keys name callers by a hash prefix, never by the key.
    let keys = redis.keys("edgesign-test:rate:");
    assert_eq!(keys.len(), 2, "{keys:?}");
    let acme = hex::encode(edgesign::auth::api_key::hash(SK_ACME));
    assert!(keys.contains(&format!("edgesign-test:rate:key:{}", &acme[..16])));
    assert!(keys.iter().all(|k| !k.contains("sk_")), "{keys:?}");

    // Without [fleet], each replica keeps a budget of its own: 3 each.
    let c = spawn_with("limit-c", &config(&origin, 0.1, 3, ""), &[]);
    let d = spawn_with("limit-d", &config(&origin, 0.1, 3, ""), &[]);
    let mut admitted = 0;
    for edge in [&c, &d, &c, &d, &c, &d, &c, &d] {
        admitted += usize::from(fetch(edge, SK_ACME).await.status == 302);
    }
    assert_eq!(admitted, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_that_keeps_sending_is_served_from_leases_not_one_redis_call_each() {
    let origin = s3_origin().await;
    origin.put("acme/a.txt", b"content");
    let redis = Redis::start(None);
    // 1000/s: leases grow 1, 2, 4, … up to 64 tokens (per_second / 10, at most 64).
    let edge = spawn_with(
        "limit-lease",
        &config(&origin, 1000.0, 1000, &fleet(&redis, "deny")),
        &[],
    );
    connected(&edge).await;
    let before = redis.script_calls();
    for _ in 0..300 {
        assert_eq!(fetch(&edge, SK_ACME).await.status, 302);
    }
    let calls = redis.script_calls() - before;
    // Leases of 1, 2, 4, … 64 (seven calls, 127 tokens), then a top-up of 32 whenever half is
    // spent (about six more): some fifteen calls, each fetched ahead of need once warm.
    assert!(
        (8..=20).contains(&calls),
        "{calls} script calls for 300 requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_allow_keeps_local_limits_and_deny_answers_503_until_it_is_back() {
    let origin = s3_origin().await;
    origin.put("acme/a.txt", b"content");
    let redis = Redis::start(None);
    let port = redis.port;
    // One token per 2 s: a lease is one token, so every request asks Redis.
    let allow = spawn_with(
        "limit-allow",
        &config(&origin, 0.5, 5, &fleet(&redis, "allow")),
        &[],
    );
    let deny = spawn_with(
        "limit-deny",
        &config(&origin, 0.5, 5, &fleet(&redis, "deny")),
        &[],
    );
    connected(&allow).await;
    connected(&deny).await;
    assert_eq!(fetch(&allow, SK_ACME).await.status, 302);
    assert_eq!(fetch(&deny, SK_ACME).await.status, 302);

    drop(redis);
    for edge in [&allow, &deny] {
        assert!(
            edge.wait_for_log(
                "cannot read revocations from Redis",
                Duration::from_secs(10)
            )
            .await,
            "{}",
            edge.log()
        );
    }
    // deny: what needs the fleet budget is refused, saying why.
    let refused = fetch(&deny, SK_ACME).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.json()["code"], "unavailable");
    // allow: served on this replica's own bucket (5, one spent), which still holds.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(fetch(&allow, SK_ACME).await.status.as_u16());
    }
    assert_eq!(statuses, [302, 302, 302, 302, 429, 429]);
    let m = parse_metrics(&get(&format!("{}/metrics", allow.base), &[]).await.text());
    assert!(m[r#"edgesign_fleet_errors_total{op="rate_limit"}"#] >= 1.0);

    let redis = Redis::start(Some(port));
    for edge in [&allow, &deny] {
        assert!(
            edge.wait_for_log("Redis is back", Duration::from_secs(10))
                .await,
            "{}",
            edge.log()
        );
    }
    // Both ask Redis again once their second of leaving it alone is over: the fresh Redis
    // gets the admin's budget from the allow replica, and the deny replica serves again.
    let deadline = edgesign::clock::instant() + Duration::from_secs(10);
    loop {
        assert_eq!(fetch(&allow, SK_ADMIN).await.status, 302);
        if !redis.keys("edgesign-test:rate:").is_empty() {
            break;
        }
        assert!(edgesign::clock::instant() < deadline, "{}", allow.log());
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let deadline = edgesign::clock::instant() + Duration::from_secs(10);
    loop {
        let got = fetch(&deny, SK_ADMIN).await;
        if got.status == 302 {
            break;
        }
        assert_eq!(got.status, 503, "{}", got.text());
        assert!(edgesign::clock::instant() < deadline, "{}", deny.log());
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}
