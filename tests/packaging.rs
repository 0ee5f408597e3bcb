//! The packaging, checked against the binary it packages, so that it fails when either
//! drifts: the Dockerfile's sources, entry point and health check; the container and
//! Kubernetes configs through `edgesign check`; the Kubernetes probes, ports and shutdown
//! budget against that config; the systemd unit (`systemd-analyze verify` where it exists);
//! the Prometheus rules and their unit tests (`promtool`); and every metric the alerts and
//! the Grafana dashboard name, against what a running `edgesign` exports on `/metrics`.
//!
//! Needs `python3` with PyYAML (the Kubernetes manifests) and `promtool` (Debian's
//! `prometheus` package; `EDGESIGN_SKIP_PROMTOOL=1` skips those checks).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

#[path = "support/scratch.rs"]
mod scratch;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

fn tempdir(tag: &str) -> PathBuf {
    scratch::dir(&format!("packaging-{tag}"))
}

fn output_text(out: &Output) -> String {
    format!(
        "exit: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `edgesign check --print` with exactly `env` in its environment; panics with its
/// output unless it exits 0. Returns the effective config it printed: every default filled
/// in and every size and duration as edgesign reads it, so no test here parses them again.
fn assert_check_passes(what: &str, args: &[String], env: &[(String, String)]) -> toml::Table {
    let out = Command::new(env!("CARGO_BIN_EXE_edgesign"))
        .args(args)
        .arg("--print")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: `edgesign {} --print` failed\n{}",
        args.join(" "),
        output_text(&out)
    );
    // Warnings do not fail the check, but they are worth seeing in the test's output.
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        eprintln!("{what}: edgesign check said:\n{stderr}");
    }
    // The effective config, then one line saying the file is OK.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (printed, verdict) = stdout
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("{what}: no effective config printed:\n{stdout}"));
    assert!(verdict.contains(": OK"), "{what}: {verdict:?}");
    printed
        .parse()
        .unwrap_or_else(|e| panic!("{what}: the printed config is not TOML: {e}\n{printed}"))
}

/// `[section] key` of an effective config (`edgesign check --print`).
fn effective<'c>(config: &'c toml::Table, section: &str, key: &str) -> &'c toml::Value {
    config
        .get(section)
        .and_then(|s| s.get(key))
        .unwrap_or_else(|| panic!("the effective config has no {section}.{key}"))
}

/// A duration of an effective config ("30s", "1m").
fn config_duration(config: &toml::Table, section: &str, key: &str) -> Duration {
    let text = effective(config, section, key)
        .as_str()
        .unwrap_or_else(|| panic!("{section}.{key} is not a duration"));
    humantime::parse_duration(text)
        .unwrap_or_else(|e| panic!("{section}.{key} = {text:?} is not a duration: {e}"))
}

/// `server.listen` of an effective config.
fn config_listen(config: &toml::Table) -> SocketAddr {
    let listen = effective(config, "server", "listen")
        .as_str()
        .expect("server.listen is not a string");
    listen
        .parse()
        .unwrap_or_else(|e| panic!("server.listen = {listen:?} is not an address: {e}"))
}

/// `cache.max_bytes` of an effective config, in bytes.
fn config_cache_bytes(config: &toml::Table) -> u64 {
    effective(config, "cache", "max_bytes")
        .as_integer()
        .and_then(|n| u64::try_from(n).ok())
        .expect("cache.max_bytes is not a byte count")
}

/// A Kubernetes memory quantity ("256Mi", "1G", "134217728") in bytes.
fn k8s_bytes(q: &str) -> u64 {
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (digits, unit) = q.split_at(split);
    let n: u64 = digits
        .parse()
        .unwrap_or_else(|_| panic!("memory quantity {q:?}"));
    let scale: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        other => panic!("memory quantity {q:?}: unit {other:?} not understood by this test"),
    };
    n * scale
}

// ---------------------------------------------------------------------------------------
// The Dockerfile
// ---------------------------------------------------------------------------------------

/// One instruction: its keyword (upper case) and the rest of its (joined) line.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    rest: String,
}

/// The Dockerfile's instructions, continuation lines joined, comments and blanks dropped.
fn dockerfile() -> Vec<Instruction> {
    let text = read("Dockerfile");
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue; // inside a continuation too, as Docker does
        }
        if let Some(body) = trimmed.strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
            continue;
        }
        cur.push_str(trimmed);
        let (keyword, rest) = cur
            .split_once(char::is_whitespace)
            .unwrap_or((cur.as_str(), ""));
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            rest: rest.trim().to_owned(),
        });
        cur.clear();
    }
    assert!(
        cur.is_empty(),
        "the Dockerfile ends inside a continuation line"
    );
    out
}

/// Leading `--flag[=value]` words, then the rest.
fn split_flags(rest: &str) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    let mut rest = rest.trim_start();
    while rest.starts_with("--") {
        let (flag, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        flags.push(flag.to_owned());
        rest = tail.trim_start();
    }
    (flags, rest)
}

/// The words of an instruction: its JSON (exec) form, or split on whitespace.
fn words(rest: &str) -> Vec<String> {
    if rest.starts_with('[') {
        serde_json::from_str(rest)
            .unwrap_or_else(|e| panic!("{rest:?} is not a JSON array of strings: {e}"))
    } else {
        rest.split_whitespace().map(str::to_owned).collect()
    }
}

/// Instructions of the last stage (after the last `FROM`).
fn final_stage(all: &[Instruction]) -> &[Instruction] {
    let last_from = all
        .iter()
        .rposition(|i| i.keyword == "FROM")
        .expect("the Dockerfile has no FROM");
    &all[last_from..]
}

/// A `COPY` of files from the build context (not `--from` a stage or image).
#[derive(Debug, Clone)]
struct ContextCopy {
    sources: Vec<String>,
    dest: String,
}

fn context_copies(all: &[Instruction]) -> Vec<ContextCopy> {
    let mut out = Vec::new();
    for i in all
        .iter()
        .filter(|i| i.keyword == "COPY" || i.keyword == "ADD")
    {
        let (flags, rest) = split_flags(&i.rest);
        if flags.iter().any(|f| f.starts_with("--from")) {
            continue;
        }
        let mut w = words(rest);
        assert!(
            w.len() >= 2,
            "{} {} names no source and destination",
            i.keyword,
            i.rest
        );
        let dest = w.pop().unwrap();
        out.push(ContextCopy { sources: w, dest });
    }
    out
}

/// Where each absolute path of the image that a context `COPY` fills comes from in the
/// repository: (image path, repository path), longest image path first.
fn image_paths(copies: &[ContextCopy]) -> Vec<(String, PathBuf)> {
    let mut map = Vec::new();
    for c in copies {
        if !c.dest.starts_with('/') {
            continue;
        }
        for s in &c.sources {
            let src = repo().join(s.trim_start_matches("./"));
            let into_dir = c.dest.ends_with('/') || c.sources.len() > 1;
            let image = if into_dir {
                let name = Path::new(s)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                format!("{}/{name}", c.dest.trim_end_matches('/'))
            } else {
                c.dest.clone()
            };
            map.push((image, src));
        }
    }
    map.sort_by_key(|(image, _)| std::cmp::Reverse(image.len()));
    map
}

/// `text` with every quoted image path (and paths below it) that a `COPY` fills replaced by
/// the repository path it comes from.
fn to_repo_paths(text: &str, map: &[(String, PathBuf)]) -> String {
    let mut text = text.to_owned();
    for (image, src) in map {
        text = text.replace(
            &format!("\"{image}"),
            &format!("\"{}", src.to_str().unwrap()),
        );
    }
    text
}

/// An argument naming an image path a `COPY` fills, as the repository path.
fn arg_to_repo(arg: &str, map: &[(String, PathBuf)]) -> String {
    for (image, src) in map {
        if arg == image {
            return src.to_str().unwrap().to_owned();
        }
        if let Some(below) = arg.strip_prefix(&format!("{image}/")) {
            return src.join(below).to_str().unwrap().to_owned();
        }
    }
    arg.to_owned()
}

/// A minimal `.dockerignore` matcher: `*` within one path segment, `**` across segments,
/// `?` one character. Negations (`!`) are not supported (and not used).
fn glob_match(pattern: &[u8], path: &[u8]) -> bool {
    match pattern.split_first().map(|(c, rest)| (*c, rest)) {
        None => path.is_empty(),
        Some((b'*', rest)) if rest.first() == Some(&b'*') => {
            let rest = rest.get(1..).unwrap_or_default();
            let rest = rest.strip_prefix(b"/").unwrap_or(rest);
            (0..=path.len()).any(|i| glob_match(rest, &path[i..]))
        }
        Some((b'*', rest)) => {
            let mut i = 0;
            loop {
                if glob_match(rest, &path[i..]) {
                    return true;
                }
                if i == path.len() || path[i] == b'/' {
                    return false;
                }
                i += 1;
            }
        }
        Some((b'?', rest)) => !path.is_empty() && path[0] != b'/' && glob_match(rest, &path[1..]),
        Some((c, rest)) => path.first() == Some(&c) && glob_match(rest, &path[1..]),
    }
}

/// The `.dockerignore` pattern that keeps `path` (or a directory above it) out of the
/// build context, if any.
fn dockerignored(path: &str) -> Option<String> {
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap_or_default();
    let path = path.trim_start_matches("./").trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    for line in ignore.lines() {
        let p = line.trim();
        if p.is_empty() || p.starts_with('#') || p.starts_with('!') {
            continue;
        }
        let p = p.trim_start_matches('/').trim_end_matches('/');
        for n in 1..=segments.len() {
            let prefix = segments[..n].join("/");
            if glob_match(p.as_bytes(), prefix.as_bytes()) {
                return Some(line.to_owned());
            }
        }
    }
    None
}

/// The first TCP port in a health check command (`/dev/tcp/<host>/<port>` or
/// `<host>:<port>`).
fn health_check_port(cmd: &str) -> Option<u16> {
    for marker in [
        "/dev/tcp/127.0.0.1/",
        "/dev/tcp/localhost/",
        "127.0.0.1:",
        "localhost:",
    ] {
        if let Some(at) = cmd.find(marker) {
            let digits: String = cmd[at + marker.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(port) = digits.parse() {
                return Some(port);
            }
        }
    }
    None
}

#[test]
fn dockerfile_copies_what_exists_and_its_entrypoint_checks_the_shipped_config() {
    let all = dockerfile();
    let copies = context_copies(&all);
    assert!(
        !copies.is_empty(),
        "the Dockerfile copies nothing from the context"
    );

    // Every COPY source exists and is not kept out of the context by .dockerignore.
    for c in &copies {
        for s in &c.sources {
            assert!(
                !s.contains(['*', '?', '[']),
                "COPY {s}: wildcards are not checked by this test; name the path"
            );
            assert!(
                repo().join(s.trim_start_matches("./")).exists(),
                "COPY {s} -> {}: {s} does not exist in the repository",
                c.dest
            );
            if let Some(pattern) = dockerignored(s) {
                panic!("COPY {s}: .dockerignore excludes it ({pattern:?})");
            }
        }
    }

    // The builder is new enough for Cargo.toml's rust-version, and builds --locked.
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    let msrv = manifest["package"]
        .get("rust-version")
        .and_then(|v| v.as_str())
        .map(|v| {
            v.split('.')
                .take(2)
                .map(|p| p.parse::<u32>().unwrap())
                .collect::<Vec<_>>()
        });
    let rust_image = all
        .iter()
        .filter(|i| i.keyword == "FROM")
        .find_map(|i| {
            i.rest
                .split_whitespace()
                .find_map(|w| w.strip_prefix("rust:"))
                .map(str::to_owned)
        })
        .expect("no FROM rust:<version> builder stage");
    let builder: Vec<u32> = rust_image
        .split(['-', '.'])
        .take(2)
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| panic!("rust:{rust_image}: no version"))
        })
        .collect();
    if let Some(msrv) = msrv {
        assert!(
            builder >= msrv,
            "FROM rust:{rust_image} is older than Cargo.toml's rust-version {msrv:?}"
        );
    }
    assert!(
        all.iter().any(|i| i.keyword == "RUN"
            && i.rest.contains("cargo build")
            && i.rest.contains("--release")
            && i.rest.contains("--locked")),
        "no RUN cargo build --release --locked"
    );

    let stage = final_stage(&all);
    let last = |kw: &str| stage.iter().rev().find(|i| i.keyword == kw);

    // A numeric, non-root user (Kubernetes' runAsNonRoot can only verify a number).
    let user = last("USER")
        .expect("the runtime stage sets no USER")
        .rest
        .clone();
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("USER {user} is not numeric"));
    assert_ne!(uid, 0, "USER {user} is root");

    // ENTRYPOINT names the binary the builder stage put on PATH.
    let entrypoint = last("ENTRYPOINT").expect("no ENTRYPOINT");
    assert!(
        entrypoint.rest.starts_with('['),
        "ENTRYPOINT must be in exec form (signals reach edgesign, not a shell)"
    );
    let entrypoint = words(&entrypoint.rest);
    let program = entrypoint.first().expect("empty ENTRYPOINT").clone();
    let binary_dests: Vec<String> = stage
        .iter()
        .filter(|i| i.keyword == "COPY")
        .filter(|i| {
            split_flags(&i.rest)
                .0
                .iter()
                .any(|f| f.starts_with("--from"))
        })
        .filter_map(|i| words(split_flags(&i.rest).1).last().cloned())
        .collect();
    let on_path = |dest: &str| {
        let dir = Path::new(dest)
            .parent()
            .and_then(Path::to_str)
            .unwrap_or("");
        Path::new(dest).file_name().and_then(|n| n.to_str()) == Some(program.as_str())
            && ["/usr/local/bin", "/usr/bin", "/bin"].contains(&dir)
    };
    assert!(
        binary_dests
            .iter()
            .any(|d| *d == program || on_path(d.as_str())),
        "ENTRYPOINT {program:?} is not a binary copied from the builder (copied: {binary_dests:?})"
    );
    let cmd = words(&last("CMD").expect("no CMD").rest);

    // ENTRYPOINT + CMD, with `check` as the command and the image's paths read from the
    // repository, validates: the image starts with the config it ships.
    let map = image_paths(&copies);
    let dir = tempdir("docker");
    let mut args: Vec<String> = vec!["check".to_owned()];
    let mut config_in_image = None;
    let mut rest = entrypoint[1..].iter().chain(cmd.iter()).cloned();
    while let Some(a) = rest.next() {
        if a == "serve" {
            continue; // replaced by check
        }
        if a == "--config" || a == "-c" {
            let path = rest.next().expect("--config without a value");
            config_in_image = Some(path.clone());
            let source = PathBuf::from(arg_to_repo(&path, &map));
            assert!(
                source.is_file(),
                "--config {path}: no COPY puts a file there (looked for {})",
                source.display()
            );
            // A copy whose /srv/... (or other COPYed) paths point into the repository.
            let text = std::fs::read_to_string(&source).unwrap();
            let copy = dir.join("config.toml");
            std::fs::write(&copy, to_repo_paths(&text, &map)).unwrap();
            args.push("--config".to_owned());
            args.push(copy.to_str().unwrap().to_owned());
            continue;
        }
        if let Some(path) = a.strip_prefix("--config=") {
            panic!("write --config {path} as two words: this test follows that form only");
        }
        args.push(arg_to_repo(&a, &map));
    }
    let config_in_image = config_in_image.expect("ENTRYPOINT + CMD name no --config");
    let env: Vec<(String, String)> = stage
        .iter()
        .filter(|i| i.keyword == "ENV")
        .flat_map(|i| {
            let w: Vec<&str> = i.rest.split_whitespace().collect();
            if w.first().is_some_and(|f| !f.contains('=')) {
                vec![(w[0].to_owned(), w[1..].join(" "))]
            } else {
                w.iter()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                    .collect()
            }
        })
        .collect();
    let config = assert_check_passes("Dockerfile ENTRYPOINT + CMD", &args, &env);

    // EXPOSE, HEALTHCHECK and the shipped config's listen port agree; the health check
    // asks /healthz.
    let source = PathBuf::from(arg_to_repo(&config_in_image, &map));
    let listen = config_listen(&config);
    assert!(
        listen.ip().is_unspecified(),
        "{}: listen = {listen} is not reachable from outside the container; use 0.0.0.0",
        source.display()
    );
    let exposed: Vec<u16> = stage
        .iter()
        .filter(|i| i.keyword == "EXPOSE")
        .flat_map(|i| {
            i.rest
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .map(|p| p.split('/').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        exposed.contains(&listen.port()),
        "EXPOSE {exposed:?} does not include the config's listen port {}",
        listen.port()
    );
    let health = last("HEALTHCHECK").expect("no HEALTHCHECK");
    assert!(
        health.rest.contains("/healthz"),
        "HEALTHCHECK does not ask /healthz: {}",
        health.rest
    );
    assert_eq!(
        health_check_port(&health.rest),
        Some(listen.port()),
        "HEALTHCHECK probes another port than the config's listen ({listen}): {}",
        health.rest
    );
}

// ---------------------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------------------

const YAML_TO_JSON: &str =
    "import yaml,json,sys; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))";

/// The documents of a YAML file, parsed by python3's PyYAML.
fn yaml_docs(rel: &str) -> Vec<Value> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(YAML_TO_JSON)
        .arg(repo().join(rel))
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); it parses the Kubernetes YAML"));
    assert!(
        out.status.success(),
        "python3 cannot parse {rel} (is PyYAML installed? `python3 -m pip install pyyaml` or `apt-get install -y python3-yaml`)\n{}",
        output_text(&out)
    );
    let docs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// The one document of `kind` in the files of deploy/kubernetes/.
fn k8s(kind: &str) -> Value {
    let mut found = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    for f in files {
        let rel = f.strip_prefix(repo()).unwrap().to_str().unwrap().to_owned();
        found.extend(yaml_docs(&rel).into_iter().filter(|d| d["kind"] == kind));
    }
    assert_eq!(found.len(), 1, "deploy/kubernetes/ should hold one {kind}");
    found.pop().unwrap()
}

/// A container port by number or by name.
fn container_port(container: &Value, port: &Value) -> u16 {
    if let Some(n) = port.as_u64() {
        return u16::try_from(n).unwrap();
    }
    let name = port.as_str().expect("a port is a number or a name");
    container["ports"]
        .as_array()
        .expect("the container has no ports")
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .map(|n| u16::try_from(n).unwrap())
        .unwrap_or_else(|| panic!("no container port is named {name:?}"))
}

/// Whether `labels` (a pod template's) satisfy a `matchLabels`-style selector.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v))
}

#[test]
fn kubernetes_manifests_agree_with_their_config() {
    let cm = k8s("ConfigMap");
    let deployment = k8s("Deployment");
    let service = k8s("Service");
    let pdb = k8s("PodDisruptionBudget");
    let pod = &deployment["spec"]["template"]["spec"];
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let containers = pod["containers"].as_array().expect("no containers");
    let container = containers
        .iter()
        .find(|c| c["name"] == "edgesign")
        .unwrap_or(&containers[0]);

    // The container's --config is a key of the ConfigMap, mounted where the args say.
    let args: Vec<String> = container["args"]
        .as_array()
        .expect("the container has no args")
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let config_path = args
        .iter()
        .position(|a| a == "--config" || a == "-c")
        .map(|i| args[i + 1].clone())
        .expect("the container's args name no --config");
    let mount = container["volumeMounts"]
        .as_array()
        .expect("no volumeMounts")
        .iter()
        .find(|m| {
            let at = m["mountPath"].as_str().unwrap().trim_end_matches('/');
            config_path.starts_with(&format!("{at}/"))
        })
        .unwrap_or_else(|| panic!("no volume is mounted above --config {config_path}"));
    let in_mount = config_path
        .strip_prefix(mount["mountPath"].as_str().unwrap().trim_end_matches('/'))
        .unwrap()
        .trim_start_matches('/')
        .to_owned();
    let volume = pod["volumes"]
        .as_array()
        .expect("no volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mount names no volume");
    assert_eq!(
        volume["configMap"]["name"], cm["metadata"]["name"],
        "--config {config_path} is not on the ConfigMap's volume"
    );
    let key = volume["configMap"]["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["path"] == in_mount.as_str()))
        .map_or(in_mount.clone(), |i| i["key"].as_str().unwrap().to_owned());
    let text = cm["data"][&key]
        .as_str()
        .unwrap_or_else(|| panic!("the ConfigMap has no key {key:?} for --config {config_path}"))
        .to_owned();

    // That config passes `edgesign check` with the environment the Deployment gives the
    // container (secrets replaced by stand-ins): every *_env key it names is provided.
    let copies = context_copies(&dockerfile());
    let map = image_paths(&copies);
    let dir = tempdir("k8s");
    let file = dir.join("config.toml");
    std::fs::write(&file, to_repo_paths(&text, &map)).unwrap();
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .map(|env| {
            env.iter()
                .map(|e| {
                    let name = e["name"].as_str().unwrap().to_owned();
                    let value = match e["value"].as_str() {
                        Some(v) => v.to_owned(),
                        None => "packaging-test-stand-in-secret-0123456789abcdef".to_owned(),
                    };
                    (name, value)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut check_args = vec!["check".to_owned()];
    for a in &args {
        if *a == config_path {
            check_args.push(file.to_str().unwrap().to_owned());
        } else if a != "serve" {
            check_args.push(a.clone());
        }
    }
    let config = assert_check_passes("the ConfigMap's config.toml", &check_args, &env);

    // Probes ask /readyz and /healthz on the port the config listens on, from outside.
    let listen = config_listen(&config);
    assert!(
        listen.ip().is_unspecified(),
        "the ConfigMap's listen = {listen} cannot be reached by the kubelet; use 0.0.0.0"
    );
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe} must GET {path}");
        assert_eq!(
            container_port(container, &get["port"]),
            listen.port(),
            "{probe} probes another port than the config's listen ({listen})"
        );
    }
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    if let Some(port) = annotations["prometheus.io/port"].as_str() {
        assert_eq!(
            port.parse::<u16>().unwrap(),
            listen.port(),
            "prometheus.io/port is not the config's listen port"
        );
    }

    // The Service and the PodDisruptionBudget select these pods; the Service sends to
    // the listen port.
    assert!(
        selects(&service["spec"]["selector"], labels),
        "the Service's selector does not match the pod labels {labels}"
    );
    for p in service["spec"]["ports"]
        .as_array()
        .expect("the Service has no ports")
    {
        let target = if p["targetPort"].is_null() {
            &p["port"]
        } else {
            &p["targetPort"]
        };
        assert_eq!(
            container_port(container, target),
            listen.port(),
            "Service port {} does not reach the config's listen port",
            p["port"]
        );
    }
    assert!(
        selects(&pdb["spec"]["selector"]["matchLabels"], labels),
        "the PodDisruptionBudget's selector does not match the pod labels {labels}"
    );

    // Kubernetes waits long enough for the drain: preStop, then drain_delay, then
    // shutdown_grace, all inside terminationGracePeriodSeconds.
    let pre_stop = &container["lifecycle"]["preStop"];
    let pre_stop_secs = if let Some(s) = pre_stop["sleep"]["seconds"].as_u64() {
        s
    } else if let Some(cmd) = pre_stop["exec"]["command"].as_array() {
        cmd.iter()
            .filter_map(|w| w.as_str())
            .find_map(|w| w.parse::<u64>().ok())
            .unwrap_or(0)
    } else {
        0
    };
    assert!(
        pre_stop_secs > 0,
        "no preStop sleep: endpoints are removed while SIGTERM is delivered, not before"
    );
    let drain = config_duration(&config, "server", "drain_delay");
    let grace = config_duration(&config, "server", "shutdown_grace");
    let budget = Duration::from_secs(pre_stop_secs) + drain + grace;
    let termination = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    assert!(
        Duration::from_secs(termination) > budget,
        "terminationGracePeriodSeconds {termination} is not above preStop {pre_stop_secs}s + drain_delay {drain:?} + shutdown_grace {grace:?}"
    );

    // Hardened: non-root, read-only root, no capabilities, no escalation.
    let sc = &container["securityContext"];
    let pod_sc = &pod["securityContext"];
    assert!(
        sc["runAsNonRoot"].as_bool() == Some(true)
            || pod_sc["runAsNonRoot"].as_bool() == Some(true),
        "runAsNonRoot is not set"
    );
    assert_eq!(
        sc["readOnlyRootFilesystem"].as_bool(),
        Some(true),
        "readOnlyRootFilesystem"
    );
    assert_eq!(
        sc["allowPrivilegeEscalation"].as_bool(),
        Some(false),
        "allowPrivilegeEscalation"
    );
    let dropped: Vec<&str> = sc["capabilities"]["drop"]
        .as_array()
        .map(|d| d.iter().filter_map(|c| c.as_str()).collect())
        .unwrap_or_default();
    assert!(dropped.contains(&"ALL"), "capabilities are not all dropped");
    let user = sc["runAsUser"]
        .as_u64()
        .or_else(|| pod_sc["runAsUser"].as_u64());
    if let Some(user) = user {
        let image_user = final_stage(&dockerfile())
            .iter()
            .rev()
            .find(|i| i.keyword == "USER")
            .map(|i| i.rest.split(':').next().unwrap().to_owned());
        assert_eq!(
            Some(user.to_string()),
            image_user,
            "runAsUser is not the image's USER"
        );
    }

    // The signature cache fits in the memory limit, with room for the connections.
    let limit = container["resources"]["limits"]["memory"]
        .as_str()
        .expect("no memory limit");
    let cache = config_cache_bytes(&config);
    assert!(
        cache * 2 <= k8s_bytes(limit),
        "cache.max_bytes ({cache} bytes) is more than half the memory limit {limit}"
    );
}

// ---------------------------------------------------------------------------------------
// systemd
// ---------------------------------------------------------------------------------------

/// The `key=value` lines of one `[section]` of a unit file, in order.
fn unit_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == format!("[{section}]");
            continue;
        }
        if !inside || line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

#[test]
fn systemd_unit_checks_before_it_starts_and_reloads_with_hup() {
    let rel = "deploy/systemd/edgesign.service";
    let text = read(rel);
    let service = unit_section(&text, "Service");
    let all = |key: &str| -> Vec<String> {
        service
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let one =
        |key: &str| -> String { all(key).pop().unwrap_or_else(|| panic!("{rel}: no {key}=")) };

    let start: Vec<String> = one("ExecStart")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let program = start[0]
        .trim_start_matches(['-', '@', ':', '+', '!'])
        .to_owned();
    let config = start
        .iter()
        .position(|w| w == "--config" || w == "-c")
        .map(|i| start[i + 1].clone())
        .expect("ExecStart names no --config");
    let check = format!("{program} check --config {config}");
    assert!(
        all("ExecStartPre")
            .iter()
            .any(|c| c.split_whitespace().collect::<Vec<_>>().join(" ") == check),
        "{rel}: no ExecStartPre={check}"
    );
    let reload = all("ExecReload");
    let hup = reload
        .iter()
        .position(|r| {
            let w: Vec<&str> = r.split_whitespace().collect();
            w.first()
                .is_some_and(|p| p.ends_with("/kill") || *p == "kill")
                && (w.contains(&"-HUP")
                    || w.contains(&"-SIGHUP")
                    || w.windows(2).any(|p| p[0] == "-s" && p[1].ends_with("HUP")))
                && w.contains(&"$MAINPID")
        })
        .unwrap_or_else(|| panic!("{rel}: no ExecReload= sends SIGHUP to $MAINPID"));
    assert_eq!(
        hup,
        reload.len() - 1,
        "{rel}: the SIGHUP must be the last ExecReload="
    );
    assert_eq!(one("DynamicUser"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("CapabilityBoundingSet"), "", "{rel}: capabilities");
    // systemd waits longer than a drain with the reference config's timings.
    let stop = one("TimeoutStopSec");
    let stop = stop
        .parse::<u64>()
        .map(Duration::from_secs)
        .unwrap_or_else(|_| humantime::parse_duration(&stop).unwrap());
    let reference = assert_check_passes(
        "config.toml",
        &[
            "check".to_owned(),
            "--config".to_owned(),
            repo().join("config.toml").to_str().unwrap().to_owned(),
        ],
        &[],
    );
    let drain = config_duration(&reference, "server", "drain_delay")
        + config_duration(&reference, "server", "shutdown_grace");
    assert!(
        stop > drain,
        "{rel}: TimeoutStopSec {stop:?} is not above {drain:?}"
    );

    // systemd-analyze verify, with the built binary where the unit expects the installed
    // one (verify refuses a unit whose programs do not exist).
    match Command::new("systemd-analyze").arg("--version").output() {
        Err(e) => {
            eprintln!("note: systemd-analyze is not available ({e}); {rel} not verified");
            return;
        }
        Ok(out) if !out.status.success() => {
            eprintln!("note: systemd-analyze does not run here; {rel} not verified");
            return;
        }
        Ok(_) => {}
    }
    let dir = tempdir("systemd");
    let unit = dir.join("edgesign.service");
    std::fs::write(
        &unit,
        text.replace(&program, env!("CARGO_BIN_EXE_edgesign")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(unit)
        .output()
        .unwrap();
    // Unknown keys and bad values are only warnings (exit 0), printed with the file name.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("edgesign.service"))
        .collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify {rel}:\n{}",
        output_text(&out)
    );
}

// ---------------------------------------------------------------------------------------
// Prometheus rules
// ---------------------------------------------------------------------------------------

/// Whether promtool is there; without it the test fails unless EDGESIGN_SKIP_PROMTOOL=1.
fn promtool_present() -> bool {
    if Command::new("promtool").arg("--version").output().is_ok() {
        return true;
    }
    if std::env::var("EDGESIGN_SKIP_PROMTOOL").is_ok_and(|v| v == "1") {
        eprintln!(
            "note: promtool is not installed and EDGESIGN_SKIP_PROMTOOL=1: rules not checked"
        );
        return false;
    }
    panic!(
        "promtool is not installed: `apt-get install -y prometheus` provides it \
         (or set EDGESIGN_SKIP_PROMTOOL=1 to skip these checks)"
    );
}

#[test]
fn prometheus_rules_pass_promtool_and_their_unit_tests() {
    if !promtool_present() {
        return;
    }
    for (what, args) in [
        (
            "check rules",
            ["check", "rules", "deploy/prometheus/alerts.yml"],
        ),
        (
            "test rules",
            ["test", "rules", "deploy/prometheus/alerts_test.yml"],
        ),
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(repo())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {what} failed\n{}",
            output_text(&out)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Metric names: the alerts and the dashboard against a running edgesign
// ---------------------------------------------------------------------------------------

/// Index just past the `close` that matches the `open` at `chars[i]`, skipping strings.
fn skip_group(chars: &[char], mut i: usize, open: char, close: char) -> usize {
    let mut depth = 0usize;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(chars, i);
            continue;
        }
        if c == open {
            depth += 1;
        } else if c == close {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    chars.len()
}

/// Index just past the string literal that starts at `chars[i]`.
fn skip_string(chars: &[char], mut i: usize) -> usize {
    let quote = chars[i];
    i += 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// The metric names a PromQL expression reads: identifiers that are not functions,
/// keywords, label names of `by (...)` and friends, numbers, durations, strings, label
/// matchers, ranges or Grafana variables (`$job`, `${x}`, `$__rate_interval`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    // Binary operators and modifiers, and the aggregation operators (written before
    // `by (...)` as often as before their parenthesis).
    const KEYWORDS: &[&str] = &[
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "atan2",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '{' {
            i = skip_group(&chars, i, '{', '}');
        } else if c == '[' {
            i = skip_group(&chars, i, '[', ']');
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '$' {
            i += 1;
            if chars.get(i) == Some(&'{') {
                i = skip_group(&chars, i, '{', '}');
            } else {
                while i < chars.len() && ident(chars[i]) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number (0.99, 1e-9, 0x1f) or a duration (5m, 1h30m).
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_')
            {
                if matches!(chars[i], 'e' | 'E')
                    && matches!(chars.get(i + 1).copied(), Some('+' | '-'))
                {
                    i += 1;
                }
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let lower = word.to_ascii_lowercase();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let before_paren = chars.get(j) == Some(&'(');
            if GROUPING.contains(&lower.as_str()) {
                if before_paren {
                    i = skip_group(&chars, j, '(', ')');
                }
            } else if KEYWORDS.contains(&lower.as_str()) || before_paren {
                // A keyword or a function call.
            } else {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Metric names a Grafana variable query reads (`label_values(metric{...}, label)`,
/// `query_result(expr)`).
fn variable_query_names(query: &str) -> BTreeSet<String> {
    let query = query.trim();
    if let Some(inner) = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
    {
        // The selector is everything before the last top-level comma (none: a label only).
        let chars: Vec<char> = inner.chars().collect();
        let (mut i, mut comma) = (0, None);
        while i < chars.len() {
            match chars[i] {
                '"' | '\'' | '`' => i = skip_string(&chars, i),
                '{' => i = skip_group(&chars, i, '{', '}'),
                '(' => i = skip_group(&chars, i, '(', ')'),
                ',' => {
                    comma = Some(i);
                    i += 1;
                }
                _ => i += 1,
            }
        }
        return match comma {
            Some(at) => metric_names(&chars[..at].iter().collect::<String>()),
            None => BTreeSet::new(),
        };
    }
    if let Some(inner) = query
        .strip_prefix("query_result(")
        .and_then(|q| q.strip_suffix(')'))
    {
        return metric_names(inner);
    }
    BTreeSet::new()
}

/// Every `expr` string anywhere in a JSON document, with its JSON path.
fn json_exprs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let here = format!("{at}.{k}");
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push((here, s.clone())),
                    _ => json_exprs(v, &here, out),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                json_exprs(v, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Metric name → where it is used, for the alerts and the dashboard.
fn metrics_used() -> BTreeMap<String, Vec<String>> {
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |names: BTreeSet<String>, at: String| {
        for n in names {
            used.entry(n).or_default().push(at.clone());
        }
    };

    let rules = "deploy/prometheus/alerts.yml";
    let docs = yaml_docs(rules);
    let mut rule_count = 0;
    for doc in &docs {
        for group in doc["groups"].as_array().expect("alerts.yml has no groups") {
            for rule in group["rules"].as_array().expect("a group has no rules") {
                let name = rule["alert"]
                    .as_str()
                    .or_else(|| rule["record"].as_str())
                    .unwrap_or("?");
                let expr = rule["expr"].as_str().expect("a rule has no expr");
                add(metric_names(expr), format!("{rules}: {name}"));
                rule_count += 1;
            }
        }
    }
    assert!(rule_count > 0, "{rules} holds no rule");

    let dash = "deploy/grafana/edgesign.json";
    let dashboard: Value = serde_json::from_str(&read(dash)).unwrap();
    let mut exprs = Vec::new();
    json_exprs(&dashboard, "", &mut exprs);
    assert!(exprs.len() >= 5, "{dash}: only {} exprs found", exprs.len());
    for (at, expr) in exprs {
        add(metric_names(&expr), format!("{dash}: {at}"));
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let query = match &var["query"] {
            Value::String(s) => s.clone(),
            Value::Object(o) => o
                .get("query")
                .and_then(|q| q.as_str())
                .unwrap_or_default()
                .to_owned(),
            _ => String::new(),
        };
        if var["type"] == "query" {
            add(
                variable_query_names(&query),
                format!("{dash}: variable {}", var["name"]),
            );
        }
    }
    used
}

/// Sample names each `# TYPE` family of an exposition covers.
fn exported_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut w = rest.split_whitespace();
        let (Some(family), kind) = (w.next(), w.next().unwrap_or("unknown")) else {
            continue;
        };
        names.insert(family.to_owned());
        let suffixes: &[&str] = match kind {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "gaugehistogram" => &["_bucket", "_gsum", "_gcount"],
            "summary" => &["_sum", "_count", "_created"],
            "info" => &["_info"],
            _ => &[],
        };
        for s in suffixes {
            names.insert(format!("{family}{s}"));
        }
    }
    names
}

/// `GET path` over a fresh HTTP/1.1 connection: (status, body).
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no status"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("bad chunk"))?;
            let size_text = String::from_utf8_lossy(&rest[..eol]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size + 2 {
                return Err(bad("short chunk"));
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The built binary, serving; killed (by its PID) when dropped, on a panic too.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `edgesign` on a free 127.0.0.1 port with the config `body(port)` and waits
/// (polling, at most 20 s) until `/healthz` answers 200. Retries with another port if the
/// one picked was taken in between.
fn start_server(body: impl Fn(u16) -> String) -> Server {
    let dir = tempdir("metrics");
    let mut last_log = String::new();
    for attempt in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join(format!("config-{attempt}.toml"));
        std::fs::write(&config, body(port)).unwrap();
        let log = dir.join(format!("edgesign-{attempt}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_edgesign"))
            .arg("--config")
            .arg(config)
            .env_remove("EDGESIGN_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        };
        let deadline = edgesign::clock::instant() + Duration::from_secs(20);
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                last_log = format!("exited with {status}; log:\n{}", server.log());
                break;
            }
            if matches!(http_get(server.addr, "/healthz"), Ok((200, _))) {
                return server;
            }
            assert!(
                edgesign::clock::instant() < deadline,
                "edgesign did not answer /healthz on {} within 20 s; log:\n{}",
                server.addr,
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let taken = last_log.contains("in use") || last_log.contains("cannot bind");
        if !taken {
            break;
        }
    }
    panic!("edgesign did not start: {last_log}");
}

#[test]
fn metrics_in_the_alerts_and_the_dashboard_are_exported() {
    let used = metrics_used();
    // The extractor found what it must, so an empty result cannot pass by accident.
    for sure in [
        "edgesign_requests_total",
        "edgesign_request_duration_seconds_bucket",
        "edgesign_config_reloads_total",
    ] {
        assert!(
            used.contains_key(sure),
            "{sure} not found in the alerts or the dashboard; found {:?}",
            used.keys().collect::<Vec<_>>()
        );
    }

    let demo = repo().join("demo");
    let demo = demo.to_str().unwrap().to_owned();
    let server = start_server(|port| {
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"

[[origins]]
name = "demo"
kind = "local"
root = "{demo}"
ttl = "1h"
[[origins.keys]]
key_id = "packaging-1"
secret = "packaging-test-secret-0123456789"

# Credentials that expire, so the credentials-expiry gauge has an origin to report.
[[origins]]
name = "store"
kind = "s3"
endpoint = "http://127.0.0.1:9"
region = "us-east-1"
bucket = "packaging"
path_style = true
ttl = "1h"
[[origins.keys]]
access_key_id = "AKIAIOSFODNN7EXAMPLE"
secret_access_key = "packaging-test-secret-0123456789"
expires_at = "2099-01-01T00:00:00Z"

[[routes]]
prefix = "/demo/"
origin = "demo"
mode = "redirect"
access = "public"
"#
        )
    });
    let (status, exposition) = http_get(server.addr, "/metrics").unwrap();
    assert_eq!(
        status,
        200,
        "GET /metrics: {exposition}\nlog:\n{}",
        server.log()
    );
    let exported = exported_names(&exposition);
    assert!(
        exported.contains("edgesign_requests_total"),
        "the exposition has no edgesign_requests family:\n{exposition}"
    );

    let missing: Vec<String> = used
        .iter()
        .filter(|(name, _)| !exported.contains(name.as_str()))
        .map(|(name, at)| format!("  {name}, used in:\n    {}", at.join("\n    ")))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics named in the alerts or the dashboard that edgesign does not export:\n{}\n\nexported families:\n{}",
        missing.join("\n"),
        exposition
            .lines()
            .filter(|l| l.starts_with("# TYPE "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(server);
}

#[test]
fn the_metric_name_extractor_reads_promql() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"sum by (job, le) (rate(a_bucket{route!~"stream|x", le="1.0"}[5m])) / on (job) group_left(version) b_info offset 5m > 1e-9"#
        ),
        ["a_bucket", "b_info"]
    );
    assert_eq!(
        names(
            r#"count(count_values("config_hash", edgesign_config_hash{job=~"$job"})) > 1 and sum(x) without (instance) > bool 0.5"#
        ),
        ["edgesign_config_hash", "x"]
    );
    assert_eq!(
        names(
            "time() - process_start_time_seconds{instance=~\"$instance\"} + rate(y[$__rate_interval]) * ${factor}"
        ),
        ["process_start_time_seconds", "y"]
    );
    assert_eq!(
        variable_query_names(r#"label_values(edgesign_ready{job=~"$job"}, instance)"#)
            .into_iter()
            .collect::<Vec<_>>(),
        ["edgesign_ready"]
    );
    assert!(variable_query_names("label_values(job)").is_empty());
    let exported = exported_names(
        "# TYPE a counter\n# TYPE b histogram\n# TYPE c gauge\n# TYPE d info\n# TYPE e_total counter\n# EOF\n",
    );
    for n in [
        "a_total", "b_bucket", "b_sum", "b_count", "c", "d_info", "e_total",
    ] {
        assert!(exported.contains(n), "{n} not covered");
    }
    assert!(!exported.contains("c_total"));
    assert!(glob_match(b"**/*.profraw", b"a/b/c.profraw"));
    assert!(glob_match(b"**/*.profraw", b"c.profraw"));
    assert!(glob_match(b"target", b"target"));
    assert!(!glob_match(b"target", b"targets"));
    assert!(!glob_match(b"*.md", b"docs/a.md"));
}

#[test]
fn kubernetes_fleet_overlay_is_the_base_plus_a_redis_the_config_reaches() {
    let kust = &yaml_docs("deploy/kubernetes/fleet/kustomization.yaml")[0];
    let listed = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_str()
                    .map_or_else(|| r["path"].as_str().unwrap().to_owned(), str::to_owned)
            })
            .collect()
    };
    assert_eq!(listed(&kust["resources"]), ["../", "redis.yaml"]);
    let base = &yaml_docs("deploy/kubernetes/kustomization.yaml")[0];
    for r in listed(&base["resources"]) {
        assert!(
            repo().join("deploy/kubernetes").join(&r).is_file(),
            "base resource {r}"
        );
    }
    let patches = listed(&kust["patches"]);
    assert_eq!(patches, ["deployment.yaml", "configmap.yaml"]);

    // The patches name the base's objects, or kustomize applies them to nothing.
    let deployment = k8s("Deployment");
    let cm = k8s("ConfigMap");
    let patch_deploy = &yaml_docs("deploy/kubernetes/fleet/deployment.yaml")[0];
    let patch_cm = &yaml_docs("deploy/kubernetes/fleet/configmap.yaml")[0];
    assert_eq!(
        patch_deploy["metadata"]["name"],
        deployment["metadata"]["name"]
    );
    assert_eq!(patch_cm["metadata"]["name"], cm["metadata"]["name"]);
    assert_eq!(patch_deploy["spec"]["replicas"], 2);

    // The fleet's config is the base's, with [fleet] after it (the two stay in step).
    let base_text = cm["data"]["config.toml"].as_str().unwrap();
    let text = patch_cm["data"]["config.toml"].as_str().unwrap();
    let added = text
        .strip_prefix(base_text.trim_end())
        .expect("fleet/configmap.yaml's config.toml does not start with the base's");
    let config: toml::Table = text.parse().unwrap();
    let fleet = config["fleet"].as_table().expect("no [fleet]");
    assert!(added.contains("[fleet]"));
    let url_env = fleet["redis_url_env"]
        .as_str()
        .expect("fleet.redis_url_env");

    // The container gets that variable from the Secret the kustomization's comment makes,
    // whose URL names the Redis Service and its port.
    let containers = patch_deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    let env = containers[0]["env"].as_array().unwrap();
    let from = env
        .iter()
        .find(|e| e["name"] == url_env)
        .unwrap_or_else(|| panic!("the Deployment patch does not set {url_env}"));
    let secret = &from["valueFrom"]["secretKeyRef"];
    let comment =
        std::fs::read_to_string(repo().join("deploy/kubernetes/fleet/kustomization.yaml")).unwrap();
    let made = format!(
        "kubectl create secret generic {} ",
        secret["name"].as_str().unwrap()
    );
    assert!(
        comment.contains(&made),
        "the kustomization does not say how to make the Secret"
    );
    let url = comment
        .split(&format!(
            "--from-literal={}=\"",
            secret["key"].as_str().unwrap()
        ))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the Secret's command gives no URL");
    let redis_docs = yaml_docs("deploy/kubernetes/fleet/redis.yaml");
    let service = redis_docs.iter().find(|d| d["kind"] == "Service").unwrap();
    let set = redis_docs
        .iter()
        .find(|d| d["kind"] == "StatefulSet")
        .unwrap();
    let host_port = format!(
        "@{}:{}/",
        service["metadata"]["name"].as_str().unwrap(),
        service["spec"]["ports"][0]["port"]
    );
    assert!(
        url.contains(&host_port),
        "{url} does not reach the Service ({host_port})"
    );
    assert!(
        selects(
            &service["spec"]["selector"],
            &set["spec"]["template"]["metadata"]["labels"]
        ),
        "the Redis Service selects no Redis pod"
    );
    let redis_args: Vec<&str> = set["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        redis_args.windows(2).any(|w| w == ["--appendonly", "yes"]),
        "Redis must persist the revocations: {redis_args:?}"
    );

    // And the config passes `edgesign check` with the base's variables plus the URL.
    let dir = tempdir("k8s-fleet");
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        to_repo_paths(text, &image_paths(&context_copies(&dockerfile()))),
    )
    .unwrap();
    let mut vars: Vec<(String, String)> =
        deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let name = e["name"].as_str().unwrap().to_owned();
                let value = e["value"]
                    .as_str()
                    .unwrap_or("packaging-test-stand-in-secret-0123456789abcdef")
                    .to_owned();
                (name, value)
            })
            .collect();
    vars.push((url_env.to_owned(), url.replace("$P", "stand-in-password")));
    assert_check_passes(
        "deploy/kubernetes/fleet's config.toml",
        &[
            "check".to_owned(),
            "--config".to_owned(),
            file.to_str().unwrap().to_owned(),
        ],
        &vars,
    );
}
