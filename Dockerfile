# herald: one static binary on a distroless base, running as non-root with
# its data (database, outbox, certificates, backups) in the /data volume.
#   docker build -t herald .
#   docker run -p 8080:8080 -v herald-data:/data -e HERALD_ADMIN_TOKEN=... herald
# Configure it with HERALD_<TABLE>_<KEY> variables, or mount a config file
# and set HERALD_CONFIG to its path. See docs/deploy.md.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=
# The same script the tests build with (deploy/deploy_test.go).
RUN VERSION="$VERSION" COMMIT="$COMMIT" sh deploy/build.sh /out/herald && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/herald /herald
COPY --from=build --chown=65532:65532 /out/data /data
# Relative paths in the config are relative to /, so the defaults
# (data/herald.db, data/outbox, data/certs, data/backups) all land in /data.
WORKDIR /
ENV HERALD_SERVER_LISTEN=0.0.0.0:8080
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8080 80 443
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["/herald", "healthcheck"]
ENTRYPOINT ["/herald"]
CMD ["serve"]
