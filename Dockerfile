# Strata in a container: built in a Rust image, run in a small Debian one as
# a non-root user, with its data directory on a volume.
#
#   docker build -t strata .
#   docker run -p 1883:1883 -p 8080:8080 -v strata-data:/data strata
#
# The image's configuration (deploy/strata.toml) listens for MQTT on
# 0.0.0.0:1883 and serves the admin API on 0.0.0.0:8080 with the API keys
# of /etc/strata/admin.keys (mount your own; `strata admin key create --file
# admin.keys` makes one). Any key can be set by an environment variable,
# STRATA_SECTION__KEY.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p strata

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /data strata \
    && mkdir -p /data /etc/strata \
    && chown strata /data
COPY --from=build /src/target/release/strata /usr/local/bin/strata
COPY deploy/strata.toml /etc/strata/strata.toml
COPY deploy/admin.keys /etc/strata/admin.keys
USER strata
WORKDIR /data
VOLUME ["/data"]
EXPOSE 1883 8080
# The runtime image needs no shell for this: strata itself asks /healthz.
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["/usr/local/bin/strata", "admin", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/strata"]
CMD ["serve", "--config", "/etc/strata/strata.toml", "--log-format", "json"]
