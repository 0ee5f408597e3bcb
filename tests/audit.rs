//! The audit log (`[audit] path`): one JSON line per access decision, with the fields an
//! investigator needs and no credential or signature in them; reopened on SIGHUP so that
//! logrotate can move it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

mod support;

use std::time::Duration;

use support::*;

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

async fn until_lines(path: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = edgesign::clock::instant() + Duration::from_secs(5);
    loop {
        let got = lines(path);
        if got.len() >= n || edgesign::clock::instant() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_access_decision_is_one_json_line_without_secrets() {
    let origin = s3_origin().await;
    origin.put("acme/a.txt", b"audited");
    origin.put("acme/b.txt", b"revoked soon");
    let dir = tempdir("audit");
    let log = dir.join("audit.ndjson");
    let edge = spawn_with(
        "audit",
        &format!(
            "public_url = \"http://edge.example\"\n{}[[routes]]\nprefix = \"/r/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"org\"\n{}[audit]\npath = \"{}\"\n",
            s3_origin_toml(&origin, "1h"),
            api_keys_toml(),
            log.display()
        ),
        &[],
    );
    let base = edge.base.clone();
    let acme = [("x-api-key", SK_ACME)];
    let enc = |s: &str| edgesign::sign::encoding::uri_encode(s.as_bytes(), true);

    let first = get(&format!("{base}/r/acme/a.txt"), &acme).await;
    assert_eq!(first.status, 302);
    let location = first.header("location").to_owned();
    assert_eq!(
        get(&format!("{base}/r/acme/a.txt"), &acme).await.status,
        302
    );
    let stale = botocore_presign(&origin.endpoint(), "acme/a.txt", "20130524T000000Z", 3600);
    let query = stale.split_once('?').unwrap().1.to_owned();
    let rescued = get(&format!("{base}/r/acme/a.txt?{query}"), &acme).await;
    assert_eq!(rescued.status, 302);
    let sig = query.rsplit_once("X-Amz-Signature=").unwrap().1.to_owned();
    let forged = query.replace(&sig[..8], "00000000");
    assert_eq!(
        get(&format!("{base}/r/acme/a.txt?{forged}"), &acme)
            .await
            .status,
        403
    );
    let served = get(
        &format!("{base}/proxy/file?presigned_url={}", enc(&location)),
        &acme,
    )
    .await;
    assert_eq!(served.status, 200, "{}", served.text());
    let api = post(
        &format!("{base}/v1/sign"),
        r#"{"origin": "docs", "key": "acme/a.txt", "expires_in": 60}"#,
        &acme,
    )
    .await;
    assert_eq!(api.status, 200);
    let revoked = post(
        &format!("{base}/v1/revocations"),
        r#"{"origin": "docs", "key": "acme/b.txt"}"#,
        &acme,
    )
    .await;
    assert_eq!(revoked.status, 201);
    assert_eq!(
        get(&format!("{base}/r/acme/b.txt"), &acme).await.status,
        403
    );

    let got = until_lines(&log, 7).await;
    // Written by the log's own thread, counted (just after the write): none dropped.
    let deadline = edgesign::clock::instant() + Duration::from_secs(5);
    let m = loop {
        let m = parse_metrics(&get(&format!("{base}/metrics"), &[]).await.text());
        if m[r#"edgesign_audit_lines_total{result="written"}"#] >= 7.0
            || edgesign::clock::instant() > deadline
        {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(m[r#"edgesign_audit_lines_total{result="written"}"#], 7.0);
    assert_eq!(m[r#"edgesign_audit_lines_total{result="dropped"}"#], 0.0);
    let decisions: Vec<&str> = got
        .iter()
        .map(|l| l["decision"].as_str().unwrap())
        .collect();
    assert_eq!(
        decisions,
        [
            "minted", "minted", "rescued", "refused", "served", "minted", "revoked"
        ],
        "{got:#?}"
    );
    let principal = format!(
        "key:{}",
        &hex::encode(edgesign::auth::api_key::hash(SK_ACME))[..12]
    );
    for line in &got {
        for field in [
            "ts",
            "request_id",
            "client",
            "principal",
            "origin",
            "key",
            "scheme",
            "decision",
        ] {
            assert!(line[field].is_string(), "{field} missing: {line}");
        }
        assert_eq!(line["principal"], principal.as_str());
        assert_eq!(line["org"], "acme");
        assert_eq!(line["client"], "127.0.0.1");
        assert_eq!(line["origin"], "docs");
        assert_eq!(line["scheme"], "sigv4");
    }
    assert_eq!(got[0]["key"], "acme/a.txt");
    assert_eq!(got[6]["key"], "acme/b.txt");
    // The handed-out URL's signature, as its digest only.
    let handed = query_param(&location, "X-Amz-Signature").unwrap();
    assert_eq!(
        got[0]["sig_digest"],
        edgesign::audit::digest(handed).as_str()
    );
    assert_eq!(
        got[3]["sig_digest"],
        edgesign::audit::digest(forged.rsplit_once("X-Amz-Signature=").unwrap().1).as_str()
    );
    assert!(got[0]["expires_at"].as_str().unwrap().ends_with('Z'));
    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [handed, sig.as_str(), SK_ACME, SK] {
        assert!(!text.contains(secret), "the audit log holds a secret");
    }

    // logrotate: move the file, SIGHUP; the next decision goes to a new file at the path.
    std::fs::rename(&log, dir.join("audit.ndjson.1")).unwrap();
    edge.signal("HUP");
    assert!(
        edge.wait_for_log("config reloaded", Duration::from_secs(10))
            .await
    );
    assert_eq!(
        get(&format!("{base}/r/acme/a.txt"), &acme).await.status,
        302
    );
    let fresh = until_lines(&log, 1).await;
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0]["decision"], "minted");
    assert_eq!(lines(&dir.join("audit.ndjson.1")).len(), 7);
}

/// A replica stopped under load keeps its audit trail: every decision it answered is in the
/// file when the process has exited, including lines still queued at `SIGTERM`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_queued_at_sigterm_are_written_before_the_process_exits() {
    let origin = s3_origin().await;
    let dir = tempdir("audit-exit");
    let log = dir.join("audit.ndjson");
    let mut edge = spawn_with(
        "audit-exit",
        &format!(
            "{}[[routes]]\nprefix = \"/r/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"public\"\n[rate_limit]\nper_second = 1000000\nburst = 1000000\n[audit]\npath = \"{}\"\n",
            s3_origin_toml(&origin, "1h"),
            log.display()
        ),
        &[],
    );
    let base = edge.base.clone();
    // Distinct keys, so that each request mints and writes a line; many at once, so that
    // lines are still queued when the last answer arrives.
    const N: usize = 2_000;
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let base = base.clone();
            tokio::spawn(async move {
                for i in (t..N).step_by(16) {
                    let got = get(&format!("{base}/r/exit/{i}.bin"), &[]).await;
                    assert_eq!(got.status, 302);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    edge.signal("TERM");
    let status = edge.wait_exit(Duration::from_secs(30)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        edge.log()
    );
    let got = lines(&log);
    assert_eq!(got.len(), N, "lines in the audit log after exit");
    let mut keys: Vec<&str> = got.iter().map(|l| l["key"].as_str().unwrap()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), N, "one line per request");
}
