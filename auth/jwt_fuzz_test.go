package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/auth"
	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerifyToken feeds the JWT parser arbitrary tokens: it never panics, every
// refusal is ErrInvalidToken without the token in its message, and anything it
// accepts carries a subject and a valid tenant.
func FuzzVerifyToken(f *testing.F) {
	secret := []byte("fuzzing-secret-of-at-least-32-bytes!")
	v, err := auth.NewJWTVerifier(context.Background(), auth.JWTConfig{HS256Secret: secret}, nil)
	if err != nil {
		f.Fatal(err)
	}
	valid, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "alice", "tenant_id": "acme", "scope": "anomalies:read", "exp": time.Now().Add(24 * time.Hour).Unix(),
	}).SignedString(secret)
	for _, seed := range []string{
		valid, "", ".", "..", "a.b.c", valid + "x", strings.Replace(valid, ".", "..", 1),
		"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
		"eyJhbGciOiJIUzI1NiIsImNyaXQiOlsieCJdfQ.e30.AAAA",
		strings.Repeat("A", 9000),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(token)
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("refusal %v is not ErrInvalidToken", err)
			}
			if len(token) > 12 && strings.Contains(err.Error(), token) {
				t.Fatalf("refusal quotes the token: %v", err)
			}
			return
		}
		if p.Actor.ID == "" || p.Tenant == "" {
			t.Fatalf("accepted a token without subject or tenant: %+v", p)
		}
	})
}
