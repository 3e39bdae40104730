package auth_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/anomalyd/anomalyd/auth"
	"github.com/anomalyd/anomalyd/domain"
)

// jwtSecret is the HS256 secret of the verifiers under test; otherSecret signs
// tokens they must refuse.
var (
	jwtSecret   = []byte("test-hs256-secret-0123456789abcdef")
	otherSecret = []byte("other-hs256-secret-0123456789abcdef")
)

// jwtClaims returns the claims of a valid token for tenant acme, to be
// changed by a test case.
func jwtClaims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"sub":       "user-1",
		"tenant_id": "acme",
		"iat":       now.Unix(),
		"exp":       now.Add(time.Hour).Unix(),
		"scope":     "anomalies:read",
	}
}

// claimsWith returns jwtClaims with set applied; a nil value deletes the claim.
func claimsWith(set map[string]any) jwt.MapClaims {
	c := jwtClaims()
	for k, v := range set {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// signJWT signs claims with method and key, putting kid in the header unless empty.
func signJWT(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s token: %v", method.Alg(), err)
	}
	return s
}

// unsignedJWT builds a token with the given header and claims and an empty
// signature, as an attacker would by hand.
func unsignedJWT(t *testing.T, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("encode token part: %v", err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(header) + "." + enc(claims) + "."
}

func newJWTVerifier(t *testing.T, cfg auth.JWTConfig) *auth.JWTVerifier {
	t.Helper()
	v, err := auth.NewJWTVerifier(t.Context(), cfg, nil)
	if err != nil {
		t.Fatalf("NewJWTVerifier: %v", err)
	}
	return v
}

// jwtCase is one token and what Verify must make of it: the principal, or a
// refusal whose message contains reason.
type jwtCase struct {
	name   string
	token  string
	want   domain.Principal
	reason string
}

func runJWTCases(t *testing.T, v *auth.JWTVerifier, cases []jwtCase, secrets ...[]byte) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.Verify(tc.token)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("Verify = %+v, want %+v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", got)
			}
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("error %v is not ErrInvalidToken", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not give the reason %q", err, tc.reason)
			}
			if !reflect.DeepEqual(got, domain.Principal{}) {
				t.Errorf("refusal returned a principal: %+v", got)
			}
			msg := err.Error()
			if tc.token != "" && strings.Contains(msg, tc.token) {
				t.Errorf("error quotes the token: %q", msg)
			}
			for _, part := range strings.Split(tc.token, ".") {
				if len(part) > 8 && strings.Contains(msg, part) {
					t.Errorf("error quotes part of the token: %q", msg)
				}
			}
			for _, s := range secrets {
				if strings.Contains(msg, string(s)) {
					t.Errorf("error quotes a secret: %q", msg)
				}
			}
		})
	}
}

func tokenPrincipal(sub, tenant string, scopes ...string) domain.Principal {
	return domain.Principal{Actor: domain.Actor{ID: sub, Kind: domain.ActorToken}, Tenant: tenant, Scopes: scopes}
}

func TestJWTVerifyHS256(t *testing.T) {
	v := newJWTVerifier(t, auth.JWTConfig{HS256Secret: jwtSecret})
	hs := func(c jwt.MapClaims) string { return signJWT(t, jwt.SigningMethodHS256, jwtSecret, "", c) }
	now := time.Now()
	valid := hs(jwtClaims())
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(
		[]byte(`{"sub":"admin","tenant_id":"acme","exp":`+jsonNumber(now.Add(time.Hour).Unix())+`}`)) + "." + parts[2]
	crit := jwt.NewWithClaims(jwt.SigningMethodHS256, jwtClaims())
	crit.Header["crit"] = []string{"exp-ext"}
	crit.Header["exp-ext"] = true
	critToken, err := crit.SignedString(jwtSecret)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey := newRSAKey(t)

	runJWTCases(t, v, []jwtCase{
		{name: "AcceptedWithScopeString", token: hs(claimsWith(map[string]any{
			"scope": "anomalies:read agents:write anomalies:read",
		})), want: tokenPrincipal("user-1", "acme", domain.ScopeAgentsWrite, domain.ScopeAnomaliesRead)},
		{name: "AcceptedWithScpArray", token: hs(claimsWith(map[string]any{
			"scope": nil, "scp": []string{domain.ScopeAnomaliesResolve, domain.ScopeAgentsRead},
		})), want: tokenPrincipal("user-1", "acme", domain.ScopeAgentsRead, domain.ScopeAnomaliesResolve)},
		{name: "AcceptedWithScpString", token: hs(claimsWith(map[string]any{
			"scope": nil, "scp": "anomalies:write",
		})), want: tokenPrincipal("user-1", "acme", domain.ScopeAnomaliesWrite)},
		{name: "AcceptedKeepingOnlyKnownScopes", token: hs(claimsWith(map[string]any{
			"scope": "openid billing:admin anomalies:read", "scp": []any{"profile", 7, "agents:read"},
		})), want: tokenPrincipal("user-1", "acme", domain.ScopeAgentsRead, domain.ScopeAnomaliesRead)},
		{name: "AcceptedWithoutScopes", token: hs(claimsWith(map[string]any{"scope": nil})),
			want: tokenPrincipal("user-1", "acme")},
		{name: "AcceptedExpiredWithinLeeway", token: hs(claimsWith(map[string]any{
			"iat": now.Add(-time.Hour).Unix(), "exp": now.Add(-5 * time.Second).Unix(),
		})), want: tokenPrincipal("user-1", "acme", domain.ScopeAnomaliesRead)},

		{name: "RefusedAlgNone", token: unsignedJWT(t, map[string]any{"alg": "none", "typ": "JWT"}, jwtClaims()),
			reason: "signing algorithm not accepted"},
		{name: "RefusedAlgNoneUppercase", token: unsignedJWT(t, map[string]any{"alg": "NONE"}, jwtClaims()),
			reason: "signing algorithm not accepted"},
		{name: "RefusedWithoutAlg", token: unsignedJWT(t, map[string]any{"typ": "JWT"}, jwtClaims()),
			reason: "signing algorithm not accepted"},
		{name: "RefusedHS512", token: signJWT(t, jwt.SigningMethodHS512, jwtSecret, "", jwtClaims()),
			reason: "signing algorithm not accepted"},
		{name: "RefusedRS256WithoutJWKS", token: signJWT(t, jwt.SigningMethodRS256, rsaKey, "", jwtClaims()),
			reason: "signing algorithm not accepted"},
		{name: "RefusedSignedWithAnotherSecret", token: signJWT(t, jwt.SigningMethodHS256, otherSecret, "", jwtClaims()),
			reason: "invalid signature"},
		{name: "RefusedTamperedClaims", token: tampered, reason: "invalid signature"},
		{name: "RefusedStrippedSignature", token: parts[0] + "." + parts[1] + ".", reason: "invalid signature"},
		{name: "RefusedExpired", token: hs(claimsWith(map[string]any{
			"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix(),
		})), reason: "token expired"},
		{name: "RefusedNotYetValid", token: hs(claimsWith(map[string]any{"nbf": now.Add(time.Hour).Unix()})),
			reason: "token not valid yet"},
		{name: "RefusedWithoutExp", token: hs(claimsWith(map[string]any{"exp": nil})), reason: "missing exp claim"},
		{name: "RefusedNonNumericExp", token: hs(claimsWith(map[string]any{"exp": "tomorrow"})),
			reason: "malformed registered claim"},
		{name: "RefusedIssuedInTheFuture", token: hs(claimsWith(map[string]any{
			"iat": now.Add(24 * time.Hour).Unix(), "exp": now.Add(25 * time.Hour).Unix(),
		})), reason: "token issued in the future"},
		{name: "RefusedWithoutSub", token: hs(claimsWith(map[string]any{"sub": nil})), reason: "sub claim"},
		{name: "RefusedEmptySub", token: hs(claimsWith(map[string]any{"sub": ""})), reason: "sub claim"},
		{name: "RefusedNumericSub", token: hs(claimsWith(map[string]any{"sub": 42})), reason: "sub claim"},
		{name: "RefusedWithoutTenant", token: hs(claimsWith(map[string]any{"tenant_id": nil})), reason: "tenant_id claim"},
		{name: "RefusedMalformedTenant", token: hs(claimsWith(map[string]any{"tenant_id": "acme/../other"})),
			reason: "tenant_id claim"},
		{name: "RefusedTenantTooLong", token: hs(claimsWith(map[string]any{"tenant_id": strings.Repeat("a", 65)})),
			reason: "tenant_id claim"},
		{name: "RefusedNonStringTenant", token: hs(claimsWith(map[string]any{"tenant_id": []string{"acme"}})),
			reason: "tenant_id claim"},
		{name: "RefusedCriticalHeader", token: critToken, reason: "unsupported critical header"},
		{name: "RefusedGarbage", token: "not a token", reason: "malformed token"},
		{name: "RefusedEmpty", token: "", reason: "malformed token"},
		{name: "RefusedBadBase64", token: "!!!.???.***", reason: "malformed token"},
		{name: "RefusedOversized", token: hs(claimsWith(map[string]any{"pad": strings.Repeat("x", 9000)})),
			reason: "token too large"},
	}, jwtSecret)
}

func jsonNumber(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestJWTVerifyIssuerAudience(t *testing.T) {
	v := newJWTVerifier(t, auth.JWTConfig{HS256Secret: jwtSecret, Issuer: "https://idp.example", Audience: "anomalyd"})
	hs := func(set map[string]any) string {
		return signJWT(t, jwt.SigningMethodHS256, jwtSecret, "", claimsWith(set))
	}
	want := tokenPrincipal("user-1", "acme", domain.ScopeAnomaliesRead)
	runJWTCases(t, v, []jwtCase{
		{name: "AcceptedWithAudienceString", token: hs(map[string]any{"iss": "https://idp.example", "aud": "anomalyd"}), want: want},
		{name: "AcceptedWithAudienceInArray", token: hs(map[string]any{"iss": "https://idp.example", "aud": []string{"billing", "anomalyd"}}), want: want},
		{name: "RefusedWrongIssuer", token: hs(map[string]any{"iss": "https://evil.example", "aud": "anomalyd"}), reason: "wrong issuer"},
		{name: "RefusedWithoutIssuer", token: hs(map[string]any{"aud": "anomalyd"}), reason: "missing iss claim"},
		{name: "RefusedWrongAudience", token: hs(map[string]any{"iss": "https://idp.example", "aud": []string{"billing"}}), reason: "wrong audience"},
		{name: "RefusedWithoutAudience", token: hs(map[string]any{"iss": "https://idp.example"}), reason: "missing aud claim"},
	}, jwtSecret)
}

func TestJWTVerifyTenantClaim(t *testing.T) {
	v := newJWTVerifier(t, auth.JWTConfig{HS256Secret: jwtSecret, TenantClaim: "org"})
	hs := func(set map[string]any) string {
		return signJWT(t, jwt.SigningMethodHS256, jwtSecret, "", claimsWith(set))
	}
	runJWTCases(t, v, []jwtCase{
		{name: "AcceptedWithTenantFromConfiguredClaim", token: hs(map[string]any{"org": "globex"}),
			want: tokenPrincipal("user-1", "globex", domain.ScopeAnomaliesRead)},
		{name: "RefusedWithOnlyTheDefaultClaim", token: hs(nil), reason: "org claim"},
	}, jwtSecret)
}

// jwksServer serves a JWK Set that a test can change while verifiers use it.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	keys []jwkset.JWKMarshal
}

// newJWKSServer starts a TLS JWKS server holding no keys yet.
func newJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		body, err := json.Marshal(jwkset.JWKSMarshal{Keys: s.keys})
		s.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// add publishes key (public, or symmetric []byte) under kid.
func (s *jwksServer) add(t *testing.T, key any, kid string, alg jwkset.ALG, use jwkset.USE) {
	t.Helper()
	jwk, err := jwkset.NewJWKFromKey(key, jwkset.JWKOptions{
		Marshal:  jwkset.JWKMarshalOptions{Private: true},
		Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: alg, USE: use},
	})
	if err != nil {
		t.Fatalf("JWK for %s: %v", kid, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, jwk.Marshal())
}

func (s *jwksServer) config() auth.JWTConfig {
	return auth.JWTConfig{JWKSURL: s.URL + "/.well-known/jwks.json", HTTPClient: s.Client()}
}

func newRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("generate RSA key: %v", err)
	}
	return k
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate ECDSA key: %v", err)
	}
	return k
}

func TestJWTVerifyJWKS(t *testing.T) {
	rsaKey, ecKey, strangerKey, encKey := newRSAKey(t), newECKey(t), newRSAKey(t), newRSAKey(t)
	p384Key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	octKey := []byte("symmetric-key-in-the-jwks-0123456789")
	srv := newJWKSServer(t)
	srv.add(t, &rsaKey.PublicKey, "rsa-1", jwkset.AlgRS256, jwkset.UseSig)
	srv.add(t, &ecKey.PublicKey, "ec-1", jwkset.AlgES256, "")
	srv.add(t, &encKey.PublicKey, "rsa-enc", "", jwkset.UseEnc)
	srv.add(t, &p384Key.PublicKey, "ec-384", "", jwkset.UseSig)
	srv.add(t, octKey, "oct-1", jwkset.AlgHS256, jwkset.UseSig)

	der, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	sign := func(m jwt.SigningMethod, key any, kid string) string { return signJWT(t, m, key, kid, jwtClaims()) }
	want := tokenPrincipal("user-1", "acme", domain.ScopeAnomaliesRead)
	confusion := []jwtCase{
		{name: "RefusedHS256WithPublicKeyPEMAsSecret", token: sign(jwt.SigningMethodHS256, pemKey, "rsa-1")},
		{name: "RefusedHS256WithPublicKeyPEMAsSecretNoKid", token: sign(jwt.SigningMethodHS256, pemKey, "")},
		{name: "RefusedHS256WithPublicKeyDERAsSecret", token: sign(jwt.SigningMethodHS256, der, "rsa-1")},
		{name: "RefusedHS256WithSymmetricJWKSKey", token: sign(jwt.SigningMethodHS256, octKey, "oct-1")},
	}

	t.Run("JWKSOnly", func(t *testing.T) {
		v := newJWTVerifier(t, srv.config())
		cases := []jwtCase{
			{name: "AcceptedRS256", token: sign(jwt.SigningMethodRS256, rsaKey, "rsa-1"), want: want},
			{name: "AcceptedES256", token: sign(jwt.SigningMethodES256, ecKey, "ec-1"), want: want},
			{name: "AcceptedRS256WithoutKid", token: sign(jwt.SigningMethodRS256, rsaKey, ""), want: want},
			{name: "RefusedRS256FromKeyNotInJWKS", token: sign(jwt.SigningMethodRS256, strangerKey, "stranger"),
				reason: "unknown signing key"},
			{name: "RefusedRS256FromKeyNotInJWKSNoKid", token: sign(jwt.SigningMethodRS256, strangerKey, ""),
				reason: "invalid signature"},
			{name: "RefusedRS256ClaimingAnotherKeysKid", token: sign(jwt.SigningMethodRS256, strangerKey, "rsa-1"),
				reason: "invalid signature"},
			{name: "RefusedRS256NamingAnECKey", token: sign(jwt.SigningMethodRS256, rsaKey, "ec-1"),
				reason: "unknown signing key"},
			{name: "RefusedES256NamingAnRSAKey", token: sign(jwt.SigningMethodES256, ecKey, "rsa-1"),
				reason: "unknown signing key"},
			{name: "RefusedEncryptionKey", token: sign(jwt.SigningMethodRS256, encKey, "rsa-enc"),
				reason: "unknown signing key"},
			{name: "RefusedES256NamingAP384Key", token: sign(jwt.SigningMethodES256, ecKey, "ec-384"),
				reason: "unknown signing key"},
			{name: "RefusedRS512", token: sign(jwt.SigningMethodRS512, rsaKey, "rsa-1"),
				reason: "signing algorithm not accepted"},
			{name: "RefusedPS256", token: sign(jwt.SigningMethodPS256, rsaKey, "rsa-1"),
				reason: "signing algorithm not accepted"},
			{name: "RefusedExpiredRS256", token: signJWT(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", claimsWith(map[string]any{
				"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix(),
			})), reason: "token expired"},
			{name: "RefusedRS256WithoutTenant", token: signJWT(t, jwt.SigningMethodRS256, rsaKey, "rsa-1",
				claimsWith(map[string]any{"tenant_id": nil})), reason: "tenant_id claim"},
			{name: "RefusedAlgNone", token: unsignedJWT(t, map[string]any{"alg": "none", "kid": "rsa-1"}, jwtClaims()),
				reason: "signing algorithm not accepted"},
		}
		for _, c := range confusion {
			c.reason = "signing algorithm not accepted"
			cases = append(cases, c)
		}
		runJWTCases(t, v, cases, pemKey, der, octKey)
	})

	t.Run("JWKSAndAnotherHS256Secret", func(t *testing.T) {
		cfg := srv.config()
		cfg.HS256Secret = jwtSecret
		v := newJWTVerifier(t, cfg)
		cases := []jwtCase{
			{name: "AcceptedHS256", token: sign(jwt.SigningMethodHS256, jwtSecret, ""), want: want},
			{name: "AcceptedRS256", token: sign(jwt.SigningMethodRS256, rsaKey, "rsa-1"), want: want},
		}
		for _, c := range confusion {
			c.reason = "invalid signature"
			cases = append(cases, c)
		}
		runJWTCases(t, v, cases, jwtSecret, pemKey, der, octKey)
	})

	t.Run("ConcurrentVerifyAccepted", func(t *testing.T) {
		v := newJWTVerifier(t, srv.config())
		tokens := []string{sign(jwt.SigningMethodRS256, rsaKey, "rsa-1"), sign(jwt.SigningMethodES256, ecKey, "ec-1")}
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Go(func() {
				_, err := v.Verify(tokens[i%len(tokens)])
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("Verify: %v", err)
			}
		}
	})
}

// TestJWTKeyRotation publishes a new key while a verifier runs: a token with
// the new kid is refused while the JWKS lacks it, and accepted without a new
// verifier once the JWKS has it, because an unknown kid makes the verifier
// fetch the JWKS again (at most once per few seconds, hence the polling).
func TestJWTKeyRotation(t *testing.T) {
	keyA, keyB := newRSAKey(t), newECKey(t)
	srv := newJWKSServer(t)
	srv.add(t, &keyA.PublicKey, "key-a", jwkset.AlgRS256, jwkset.UseSig)
	v := newJWTVerifier(t, srv.config())
	tokenA := signJWT(t, jwt.SigningMethodRS256, keyA, "key-a", jwtClaims())
	tokenB := signJWT(t, jwt.SigningMethodES256, keyB, "key-b", jwtClaims())

	if _, err := v.Verify(tokenA); err != nil {
		t.Fatalf("Verify(token of key A): %v", err)
	}
	if _, err := v.Verify(tokenB); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("Verify(token of key B before it is published) = %v, want ErrInvalidToken", err)
	}

	srv.add(t, &keyB.PublicKey, "key-b", jwkset.AlgES256, jwkset.UseSig)
	const hangGuard = 30 * time.Second
	deadline := time.Now().Add(hangGuard)
	for {
		_, err := v.Verify(tokenB)
		if err == nil {
			break
		}
		if !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("Verify(token of key B) = %v, want nil or ErrInvalidToken", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("token of key B still refused %s after B was published: %v", hangGuard, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := v.Verify(tokenA); err != nil {
		t.Fatalf("Verify(token of key A) after rotation: %v", err)
	}
}

func TestNewJWTVerifierErrors(t *testing.T) {
	serve := func(status int, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			w.Write([]byte(body))
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	live := newJWKSServer(t)
	live.add(t, &newECKey(t).PublicKey, "ec-1", jwkset.AlgES256, jwkset.UseSig)

	for _, tc := range []struct {
		name string
		ctx  context.Context
		cfg  auth.JWTConfig
	}{
		{name: "NothingConfigured"},
		{name: "SecretTooShort", cfg: auth.JWTConfig{HS256Secret: []byte("short")}},
		{name: "NegativeLeeway", cfg: auth.JWTConfig{HS256Secret: jwtSecret, Leeway: -time.Second}},
		{name: "RelativeURL", cfg: auth.JWTConfig{JWKSURL: "/jwks.json"}},
		{name: "NotHTTP", cfg: auth.JWTConfig{JWKSURL: "file:///etc/jwks.json"}},
		{name: "NotFound", cfg: auth.JWTConfig{JWKSURL: serve(http.StatusNotFound, "no")}},
		{name: "NotJSON", cfg: auth.JWTConfig{JWKSURL: serve(http.StatusOK, "<html>")}},
		{name: "NoKeys", cfg: auth.JWTConfig{JWKSURL: serve(http.StatusOK, `{"issuer":"https://idp.example"}`)}},
		{name: "OnlyUnusableKeys", cfg: auth.JWTConfig{JWKSURL: serve(http.StatusOK, `{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]}`)}},
		{name: "Unreachable", cfg: auth.JWTConfig{JWKSURL: closed.URL + "/jwks?access_token=s3cret"}},
		{name: "ContextEnded", ctx: cancelled, cfg: live.config()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			v, err := auth.NewJWTVerifier(ctx, tc.cfg, nil)
			if err == nil {
				t.Fatalf("NewJWTVerifier = %v, want an error", v)
			}
			t.Logf("NewJWTVerifier: %v", err)
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error quotes the URL's credentials: %v", err)
			}
		})
	}
}

// lockedBuffer is a log destination that a verifier may write to while the
// test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestJWKSRefreshFailureLoggedWithoutCredentials(t *testing.T) {
	key := newRSAKey(t)
	srv := newJWKSServer(t)
	srv.add(t, &key.PublicKey, "key-a", jwkset.AlgRS256, jwkset.UseSig)
	var logs lockedBuffer
	cfg := srv.config()
	cfg.JWKSURL = srv.URL + "/jwks.json?access_token=s3cret"
	v, err := auth.NewJWTVerifier(t.Context(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("NewJWTVerifier: %v", err)
	}
	srv.Close()

	// An unknown kid makes the verifier fetch the JWKS, which fails now.
	unknown := signJWT(t, jwt.SigningMethodRS256, key, "key-new", jwtClaims())
	if _, err := v.Verify(unknown); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("Verify(unknown kid) = %v, want ErrInvalidToken", err)
	}
	if _, err := v.Verify(signJWT(t, jwt.SigningMethodRS256, key, "key-a", jwtClaims())); err != nil {
		t.Fatalf("Verify(cached kid) with the JWKS server down: %v", err)
	}

	out := logs.String()
	if !strings.Contains(out, "JWKS refresh failed") || !strings.Contains(out, srv.URL+"/jwks.json") {
		t.Fatalf("log does not report the failed refresh of %s/jwks.json:\n%s", srv.URL, out)
	}
	for _, leak := range []string{"s3cret", "access_token", unknown} {
		if strings.Contains(out, leak) {
			t.Errorf("log contains %q:\n%s", leak, out)
		}
	}
}
