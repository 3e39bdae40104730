package http

import (
	_ "embed"
	"net/http"
	"strconv"
)

// OpenAPI is the OpenAPI 3.1 document of the API, openapi.json, as the binary
// was built with it. It is written by hand and is the one description of the
// contract: the contract test of cmd/anomalyd validates every request and
// response of the end-to-end tests against it, so it cannot drift from the
// handlers unnoticed.
//
//go:embed openapi.json
var OpenAPI []byte

// OpenAPIHandler returns the handler of GET /openapi.json: it serves OpenAPI
// as application/json. It needs no credential and cannot fail, so it returns
// no error code of its own.
func OpenAPIHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(OpenAPI)))
		w.Write(OpenAPI)
	})
}
