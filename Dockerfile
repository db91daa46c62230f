# syntax=docker/dockerfile:1
#
# mcpfleet container image: the release binary, statically linked, on distroless (no shell, non-root).
#
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=0.1.0 -t mcpfleet:0.1.0 .
#   (scripts/build-image.sh prints and runs exactly this)
#
# Multi-arch strategy: the builder always runs on the build machine's own platform ($BUILDPLATFORM) and
# cross-compiles for $TARGETARCH with rustup's target std and Debian's cross gcc as linker. Building natively
# per platform under QEMU also works, but emulated rustc is 5-20x slower and qemu-user is known to crash
# on big rustc/cargo processes; cross-compiling is fast and deterministic. When target == build platform
# nothing extra is installed and the native toolchain is used.
# The binary is linked statically (glibc's crt-static: `-C target-feature=+crt-static`, with --target so build
# scripts and proc macros stay dynamic): the same executable is the bridge that stdio MCP servers run behind, copied
# into images of any libc, with or without a shell. Both stages are Debian 12 (bookworm): a static glibc still loads
# its name-service modules at run time for DNS lookups (the controller's AWS endpoints), and distroless/cc-debian12
# has the same glibc (2.36) to load them from; the bridge resolves no names.

ARG RUST_VERSION=1.95

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS builder
ARG TARGETARCH
ARG BUILDARCH
SHELL ["/bin/bash", "-o", "pipefail", "-euc"]
WORKDIR /src

# Map the Docker architecture to a Rust target triple and, when cross-compiling, install Debian's cross gcc
# (bookworm versions, pinned) to link with and to build any C code that crates compile (cc-rs reads CC_<triple>).
RUN case "$TARGETARCH" in \
      amd64) triple=x86_64-unknown-linux-gnu;  gnu=x86-64; deb=amd64 ;; \
      arm64) triple=aarch64-unknown-linux-gnu; gnu=aarch64; deb=arm64 ;; \
      *) echo "unsupported TARGETARCH: $TARGETARCH (supported: amd64, arm64)" >&2; exit 1 ;; \
    esac; \
    echo "$triple" > /rust-target; \
    if [ "$TARGETARCH" != "$BUILDARCH" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends \
        "gcc-${gnu}-linux-gnu=4:12.2.0-3" "libc6-dev-${deb}-cross=2.36-8cross1"; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    rustup target add "$triple"

# Debian names its (native and cross) gcc <arch>-linux-gnu-gcc, so these hold for native builds too.
ENV CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    AR_x86_64_unknown_linux_gnu=x86_64-linux-gnu-ar \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
    CARGO_TERM_COLOR=never \
    RUSTFLAGS="-C target-feature=+crt-static"

# Dependency layer: build every dependency against placeholder sources (the bench declared in Cargo.toml
# gets a placeholder too and keeps it: the image builds only the binary), so this layer (the slow part) is
# reused until Cargo.toml or Cargo.lock changes. The registry is a cache mount: downloads survive even a
# dependency change. The layer itself can be exported with `--cache-to` for CI builders.
COPY Cargo.toml Cargo.lock ./
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/plan.rs \
    && cargo build --release --locked --target "$(cat /rust-target)" \
    && rm -rf src

# Real sources. The touch makes the crate's own files newer than the placeholder build, so cargo always
# recompiles mcpfleet itself (COPY keeps the context's mtimes, which may be older).
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    touch src/main.rs src/lib.rs \
    && cargo build --release --locked --target "$(cat /rust-target)" --bin mcpfleet \
    && install -D -m 0755 "target/$(cat /rust-target)/release/mcpfleet" /out/mcpfleet

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG VERSION=dev
ARG SOURCE_URL=https://github.com/mcpfleet/mcpfleet
LABEL org.opencontainers.image.title="mcpfleet" \
      org.opencontainers.image.description="Kubernetes-style controller for fleets of MCP servers on AWS ECS/Fargate" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

COPY --from=builder /out/mcpfleet /usr/local/bin/mcpfleet

# distroless "nonroot" (uid/gid 65532); its home is writable, e.g. for `--sim-state .mcpfleet/sim.json`.
USER 65532:65532
WORKDIR /home/nonroot

# ECS sends SIGTERM on stop, then SIGKILL after the task's stopTimeout; mcpfleet drains on SIGTERM.
STOPSIGNAL SIGTERM

# The image has no shell or curl: the binary probes the controller's /healthz itself. `mcpfleet run` listens on
# 127.0.0.1:9090 by default, which is also where the probe looks.
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/mcpfleet", "healthcheck", "--url", "http://127.0.0.1:9090/healthz"]

ENTRYPOINT ["/usr/local/bin/mcpfleet"]
CMD ["--help"]
