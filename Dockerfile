# Builds the anomalyd and anomalyctl binaries into a small image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/anomalyd ./cmd/anomalyd && \
    CGO_ENABLED=0 go build -trimpath -o /out/anomalyctl ./cmd/anomalyctl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/anomalyd"]
