# flashmart container image: a release build in a Rust image, then only the binary on a slim
# Debian runtime as a non-root user (no compiler, no cargo, no shell tools beyond the base).
#
#   docker build --build-arg FLASHMART_GIT_REVISION=$(git rev-parse --short=12 HEAD) -t flashmart .
#
# The binary embeds its migrations, Lua scripts and storefront assets, so the runtime stage
# needs nothing else. `flashmart_build_info{revision}` reports FLASHMART_GIT_REVISION
# (`unknown` when not given: the build context has no .git).

FROM rust:1-bookworm AS build
WORKDIR /src
ARG FLASHMART_GIT_REVISION=unknown
ENV FLASHMART_GIT_REVISION=${FLASHMART_GIT_REVISION}
# Dependencies first, so a source change does not rebuild them: a stub crate with the real
# manifests, then the real sources.
COPY Cargo.toml Cargo.lock build.rs ./
COPY chaos/Cargo.toml chaos/Cargo.toml
RUN mkdir -p src chaos/src benches \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > chaos/src/main.rs \
    && echo 'fn main() {}' > benches/conventional_coupon.rs \
    && cargo build --release --bin flashmart \
    && rm -rf src chaos/src benches
COPY . .
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --bin flashmart \
    && strip target/release/flashmart

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin flashmart
COPY --from=build /src/target/release/flashmart /usr/local/bin/flashmart
USER 10001:10001
# API and metrics listeners on all interfaces inside the container (the host decides what is
# published); everything else comes from the environment (README, "Configuration").
ENV BIND_ADDR=0.0.0.0:8080 \
    METRICS_ADDR=0.0.0.0:9898 \
    LOG_FORMAT=json
EXPOSE 8080 9898
# tini forwards SIGTERM to flashmart, which drains connections and stops its workers.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/flashmart"]
CMD ["serve"]
