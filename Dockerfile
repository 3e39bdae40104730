# Builds the anomalyd and anomalyctl binaries into a small image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/anomalyd ./cmd/anomalyd && \
    CGO_ENABLED=0 go build -trimpath -o /out/anomalyctl ./cmd/anomalyctl && \
    mkdir -p /data-dir

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
# The data directory (the embedded NATS's files, the keys file, the read
# models' snapshot), owned by the nonroot user the image runs as, so that a
# volume mounted there starts writable.
COPY --from=build --chown=65532:65532 /data-dir /var/lib/anomalyd
ENV ANOMALYD_DATA_DIR=/var/lib/anomalyd
ENTRYPOINT ["/usr/local/bin/anomalyd"]
