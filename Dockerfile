# edgesign container image.
#
#   docker build --build-arg EDGESIGN_COMMIT="$(git rev-parse --short=12 HEAD)" -t edgesign .
#   docker run --rm -p 8080:8080 --read-only --cap-drop ALL --stop-timeout 45 edgesign
#   curl -L http://127.0.0.1:8080/demo/hello.txt
#
# Your own config goes over the shipped one, read-only:
#   docker run ... -v "$PWD/config.toml:/etc/edgesign/config.toml:ro" edgesign
# Reload it in place with `docker kill -s HUP <container>`.
#
# The process writes nothing: logs go to stderr, so `--read-only` (Kubernetes:
# readOnlyRootFilesystem) just works. Give `docker stop` / the orchestrator at least
# server.drain_delay + server.shutdown_grace before SIGKILL (`--stop-timeout 45`; Docker's
# default is 10 s). The cache mounts below need BuildKit (the default builder since Docker 23).

# --- build -------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /build

# Only what `cargo build` reads: the manifests, the build script, the sources, and the
# bench targets Cargo.toml declares (cargo refuses a manifest whose targets are missing).
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY benches ./benches

# The context has no .git (see .dockerignore), so build.rs cannot ask git for the commit
# that `edgesign --version` and edgesign_build_info report: pass it in.
ARG EDGESIGN_COMMIT=unknown
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/build/target,sharing=locked \
    EDGESIGN_COMMIT="${EDGESIGN_COMMIT}" cargo build --release --locked --bin edgesign \
    && install -D -m 0755 target/release/edgesign /out/edgesign

# --- run ---------------------------------------------------------------------------------
# bookworm-slim rather than distroless: the HEALTHCHECK needs a shell (bash's /dev/tcp, no
# curl installed), and edgesign has no health-probe subcommand of its own. The origin
# client's CA roots are compiled in (webpki-roots), so no ca-certificates package either;
# a private CA comes in through origin_client.ca_file.
FROM debian:bookworm-slim

# ca-certificates: the AWS SDK's own HTTPS calls (STS for web identity and assume_role, SSO)
# trust the system's CA store; the origin client has the web roots built in.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A fixed numeric UID/GID, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 edgesign \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin edgesign

COPY --from=builder /out/edgesign /usr/local/bin/edgesign
COPY LICENSE NOTICE /usr/share/doc/edgesign/
# The demo directory the shipped config serves as the `demo` local origin.
COPY demo /srv/edgesign/demo
# The default config; mount yours over it (read-only).
COPY deploy/docker/config.toml /etc/edgesign/config.toml

ENV EDGESIGN_LOG_FORMAT=json
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM

# GET /healthz over bash's /dev/tcp (no curl in the image): healthy on a 200 status line.
# The port is the shipped config's listen port; change both together.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && IFS= read -r status <&3 && [[ $status == 'HTTP/1.1 200'* ]]"]

ENTRYPOINT ["edgesign"]
CMD ["--config", "/etc/edgesign/config.toml"]
