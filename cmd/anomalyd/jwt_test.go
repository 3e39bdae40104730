package main_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

const jwtSecret = "a-shared-secret-of-at-least-32-bytes!!"

func hs256(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s *server) bearer(method, path, token, tenant, body string) response {
	s.t.Helper()
	return s.send(method, path, http.Header{"Authorization": {"Bearer " + token}}, tenant, body)
}

func TestBearerJWT(t *testing.T) { forEachBackend(t, testBearerJWT) }

func testBearerJWT(t *testing.T, b backend) {
	dir, flags := newEnv(t, b)
	secretFile := filepath.Join(dir, "jwt-secret")
	if err := os.WriteFile(secretFile, []byte(jwtSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, dir, append(flags, "--jwt-hs256-secret-file", secretFile, "--jwt-issuer", "https://idp.example")...)
	now := time.Now()
	claims := func(mut func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "alice@example.com", "tenant_id": "acme", "iss": "https://idp.example",
			"scope": "anomalies:read anomalies:write anomalies:resolve", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
		if mut != nil {
			mut(c)
		}
		return c
	}
	body := fmt.Sprintf(`{"agent_id":%q,"anomaly_type":"rate_spike","severity":"high"}`, uuid.NewString())

	r := s.bearer("POST", "/v1/anomalies", hs256(t, claims(nil)), "acme", body)
	if r.status != http.StatusCreated {
		t.Fatalf("valid token: %d %s", r.status, r.raw)
	}
	id := r.header.Get("Location")[len("/v1/anomalies/"):]
	evs := s.events("acme", id)
	if len(evs) != 1 || evs[0].Actor != (domain.Actor{ID: "alice@example.com", Kind: domain.ActorToken}) {
		t.Fatalf("actor = %+v, want the token's subject", evs[0].Actor)
	}

	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory","tenant_id":"acme","scope":"anomalies:resolve","exp":9999999999}`)) + "."
	other, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil)).SignedString([]byte("another-secret-that-is-long-enough-too"))
	refused := []struct {
		name, token, tenant string
		status              int
	}{
		{"UnauthorizedAlgNone", none, "acme", 401},
		{"UnauthorizedWrongSignature", other, "acme", 401},
		{"UnauthorizedExpired", hs256(t, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() })), "acme", 401},
		{"UnauthorizedNotYetValid", hs256(t, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })), "acme", 401},
		{"UnauthorizedWithoutExp", hs256(t, claims(func(c jwt.MapClaims) { delete(c, "exp") })), "acme", 401},
		{"UnauthorizedWrongIssuer", hs256(t, claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })), "acme", 401},
		{"ForbiddenOtherTenant", hs256(t, claims(func(c jwt.MapClaims) { c["tenant_id"] = "globex" })), "acme", 403},
		{"ForbiddenMissingScope", hs256(t, claims(func(c jwt.MapClaims) { c["scope"] = "anomalies:read" })), "acme", 403},
	}
	before := s.head()
	for _, rc := range refused {
		t.Run(rc.name, func(t *testing.T) {
			r := s.bearer("POST", "/v1/anomalies/"+id+"/resolve", rc.token, rc.tenant, `{"resolution":"false_positive"}`)
			if r.status != rc.status {
				t.Fatalf("got %d %s, want %d", r.status, r.raw, rc.status)
			}
			if strings.Contains(r.raw, rc.token) || strings.Contains(r.raw, jwtSecret) {
				t.Fatal("the error body repeats the token or the secret")
			}
		})
	}
	if after := s.head(); after != before {
		t.Fatalf("refused tokens changed the store (head %d -> %d)", before, after)
	}
	r = s.bearer("POST", "/v1/anomalies/"+id+"/resolve", hs256(t, claims(nil)), "acme", `{"resolution":"false_positive"}`)
	if r.status != 200 || !strings.Contains(r.raw, `"resolved_by":"alice@example.com"`) {
		t.Fatalf("resolve with a valid token: %d %s", r.status, r.raw)
	}
}
