# syntax=docker/dockerfile:1
# workspace-server: the plain image. Build from the repository root:
#   docker build --build-arg GIT_SHA="$(git rev-parse HEAD)" -t workspace-server .
#
# Stages: chef (toolchain + cargo-chef) -> planner (dependency recipe) -> builder (dependencies
# cooked in their own cached layer, then the server) -> runtime (distroless, non-root).
# The image expects an external PostgreSQL in DATABASE_URL; the built-in PostgreSQL the binary
# starts without it is a development convenience and has no server binaries here.

# The toolchain of rust-toolchain.toml (an exact tag; a test keeps them equal); RUSTUP_TOOLCHAIN
# makes rustup use the image's own instead of installing the file's extra components (rustfmt,
# clippy) into a build image. Every base image is pinned by exact tag or digest.
ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
ARG RUST_VERSION
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION}
# The image has gcc but not make, which building jemalloc (the server's allocator) needs.
RUN apt-get update && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
# Pinned: the recipe format and the cook step are cargo-chef's; a new release is a reviewed bump.
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install cargo-chef --locked --version "=${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# The dependency layer: rebuilt only when Cargo.toml/Cargo.lock change.
RUN cargo chef cook --release --locked --package server --recipe-path recipe.json
COPY . .
# Queries are checked against the committed .sqlx/ data: no database at build time.
ENV SQLX_OFFLINE=true
ARG GIT_SHA=dev
RUN GIT_SHA="${GIT_SHA}" cargo build --release --locked --package server \
    && install -D -m 0755 target/release/workspace-server /out/workspace-server

# distroless/cc: glibc, libgcc, CA certificates and /etc/passwd with `nonroot` (65532); no shell.
# distroless publishes no dated tags: pinned by digest (bump it with `crane digest
# gcr.io/distroless/cc-debian12:nonroot`).
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f AS runtime
COPY --from=builder /out/workspace-server /usr/local/bin/workspace-server
USER 65532:65532
WORKDIR /home/nonroot
ENV PORT=8080 \
    DATA_DIR=/home/nonroot/data
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/workspace-server", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/workspace-server"]
CMD ["serve"]
