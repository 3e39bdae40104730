package auth

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/anomalyd/anomalyd/domain"
)

const (
	// maxTokenBytes bounds the parsing work an unauthenticated caller can cause;
	// real tokens are a few hundred bytes to a couple of KiB.
	maxTokenBytes = 8 << 10

	defaultTenantClaim = "tenant_id"
	defaultLeeway      = 30 * time.Second

	// minHS256Secret is the key length RFC 7518 §3.2 requires for HS256: a
	// shorter secret can be brute-forced from a single token.
	minHS256Secret = 32

	// minRSABits refuses RSA keys too weak to trust with a signature.
	minRSABits = 2048

	// jwksTimeout bounds each JWKS fetch, whether at start, periodic, or for an
	// unknown kid.
	jwksTimeout = 10 * time.Second

	// jwksRefreshEvery is how often the keys are fetched in the background, so
	// that a key the issuer withdrew stops being accepted within this time.
	jwksRefreshEvery = 5 * time.Minute

	// jwksUnknownKIDEvery is how often a token with a kid the cache lacks may
	// make the verifier fetch the JWKS again: that is how a rotated-in key starts
	// working at once, and the limit stops a stream of made-up kids from turning
	// into a stream of fetches. A refused unknown kid never waits for the limit.
	jwksUnknownKIDEvery = 5 * time.Second

	// maxJWKSBytes bounds what a JWKS response may make the verifier read.
	maxJWKSBytes = 1 << 20
)

// ErrInvalidToken is returned, wrapped with a reason that is safe to show the
// client, for every bearer token Verify refuses.
var ErrInvalidToken = errors.New("invalid bearer token")

// Reasons the key lookup gives the parser; Verify turns them into refusals.
var (
	errAlgorithm = errors.New("signing algorithm not accepted")
	errNoKey     = errors.New("unknown signing key")
	errCritical  = errors.New("unsupported critical header")
)

// JWTConfig configures bearer tokens. HS256Secret and JWKSURL may both be set.
type JWTConfig struct {
	HS256Secret []byte        // shared secret for HS256, at least 32 bytes; empty: HS256 refused
	JWKSURL     string        // RS256/ES256 keys from a JWKS URL (refreshed in the background, cached, unknown kid triggers a rate-limited refresh = key rotation)
	Issuer      string        // optional: required "iss"
	Audience    string        // optional: required in "aud"
	TenantClaim string        // default "tenant_id"
	Leeway      time.Duration // clock skew allowed on exp/nbf/iat, default 30s
	HTTPClient  *http.Client  // for the JWKS fetch; nil: a client with a 10 s timeout
}

// JWTVerifier checks bearer JWTs and turns them into principals. It is safe for
// concurrent use.
type JWTVerifier struct {
	secret      []byte      // HS256 key; nil when HS256 is refused
	jwks        jwt.Keyfunc // RS256/ES256 keys; nil without a JWKS URL
	methods     []string    // the algorithms accepted, by what is configured
	parser      *jwt.Parser
	issuer      string
	tenantClaim string
}

// NewJWTVerifier builds a verifier; with a JWKS URL it fetches the keys once
// before returning (ctx bounds it) and refreshes them in the background until
// ctx ends. Refresh failures are logged to logger (nil discards them) with the
// URL stripped of credentials and query. It returns an error when neither
// HS256Secret nor JWKSURL is set, when the secret is shorter than 32 bytes, the
// leeway negative, the URL not an absolute http(s) URL, or the JWKS cannot be
// fetched or parsed or holds no RS256/ES256 key.
func NewJWTVerifier(ctx context.Context, cfg JWTConfig, logger *slog.Logger) (*JWTVerifier, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case len(cfg.HS256Secret) == 0 && cfg.JWKSURL == "":
		return nil, errors.New("bearer tokens: neither an HS256 secret nor a JWKS URL is configured")
	case len(cfg.HS256Secret) > 0 && len(cfg.HS256Secret) < minHS256Secret:
		return nil, fmt.Errorf("bearer tokens: the HS256 secret must be at least %d bytes", minHS256Secret)
	case cfg.Leeway < 0:
		return nil, errors.New("bearer tokens: leeway must not be negative")
	}
	v := &JWTVerifier{issuer: cfg.Issuer, tenantClaim: cmp.Or(cfg.TenantClaim, defaultTenantClaim)}
	if len(cfg.HS256Secret) > 0 {
		v.secret = bytes.Clone(cfg.HS256Secret)
		v.methods = append(v.methods, jwt.SigningMethodHS256.Alg())
	}
	if cfg.JWKSURL != "" {
		jwks, err := openJWKS(ctx, cfg.JWKSURL, cfg.HTTPClient, logger)
		if err != nil {
			return nil, err
		}
		v.jwks = jwks
		v.methods = append(v.methods, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg())
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cmp.Or(cfg.Leeway, defaultLeeway)),
		jwt.WithStrictDecoding(), // one encoding per signature: no malleable tokens
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Verify checks a compact JWS and returns its principal: Actor{ID: sub, Kind:
// domain.ActorToken}, Tenant from the tenant claim, Scopes from "scope"
// (space-separated string) or "scp" (array of strings, or a space-separated
// string), keeping only known scopes. It returns ErrInvalidToken (wrapped, for
// errors.Is) for every refusal, with a reason safe to show a client that never
// contains the token or the secret.
func (v *JWTVerifier) Verify(token string) (domain.Principal, error) {
	if len(token) > maxTokenBytes {
		return refuse("token too large")
	}
	claims := jwt.MapClaims{}
	t, err := v.parser.ParseWithClaims(token, claims, v.key)
	if err != nil {
		return refuse(v.reason(t, claims, err))
	}
	sub, err := claims.GetSubject()
	if err != nil || sub == "" {
		return refuse("missing or malformed sub claim")
	}
	tenant, _ := claims[v.tenantClaim].(string)
	if !domain.ValidTenant(tenant) {
		return refuse("missing or malformed " + v.tenantClaim + " claim")
	}
	return domain.Principal{
		Actor:  domain.Actor{ID: sub, Kind: domain.ActorToken},
		Tenant: tenant, Scopes: knownScopes(claims),
	}, nil
}

func refuse(reason string) (domain.Principal, error) {
	return domain.Principal{}, fmt.Errorf("%w: %s", ErrInvalidToken, reason)
}

// key picks the verification key by the token's algorithm first, so that an
// HS256 token is only ever checked against the shared secret and never against
// a JWKS key (the algorithm-confusion attack, whether the JWKS key is public or
// a symmetric "oct" one).
func (v *JWTVerifier) key(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, errCritical // RFC 7515 §4.1.11: refuse extensions we do not implement
	}
	switch alg := t.Method.Alg(); alg {
	case jwt.SigningMethodHS256.Alg():
		if v.secret == nil {
			return nil, errAlgorithm
		}
		return v.secret, nil
	case jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg():
		if v.jwks == nil {
			return nil, errAlgorithm
		}
		got, err := v.jwks(t)
		if err != nil {
			return nil, errNoKey
		}
		// keyfunc returns one key for a kid, or every key for a token without
		// one; keep only keys of the kind alg names.
		set, ok := got.(jwt.VerificationKeySet)
		if !ok {
			set.Keys = append(set.Keys, got)
		}
		var fit jwt.VerificationKeySet
		for _, k := range set.Keys {
			if verifies(alg, k) {
				fit.Keys = append(fit.Keys, k)
			}
		}
		if len(fit.Keys) == 0 {
			return nil, errNoKey
		}
		return fit, nil
	}
	return nil, errAlgorithm
}

// verifies reports whether key is a public key that may check alg signatures.
func verifies(alg string, key any) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return alg == jwt.SigningMethodRS256.Alg() && k.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		return alg == jwt.SigningMethodES256.Alg() && k.Curve == elliptic.P256()
	}
	return false
}

// reason names why the parser refused a token, in words of our own: the
// library's messages may quote parts of the token.
func (v *JWTVerifier) reason(t *jwt.Token, claims jwt.MapClaims, err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case t == nil || t.Method == nil || !slices.Contains(v.methods, t.Method.Alg()) || errors.Is(err, errAlgorithm):
		return "signing algorithm not accepted"
	case errors.Is(err, errNoKey):
		return "unknown signing key"
	case errors.Is(err, errCritical):
		return "unsupported critical header"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "unverifiable token"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "invalid signature"
	case errors.Is(err, jwt.ErrInvalidType):
		return "malformed registered claim"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "missing " + v.missingClaim(claims) + " claim"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	}
	return "invalid token"
}

// missingClaim names the required claim the validator found missing: exp
// always, iss and aud when configured.
func (v *JWTVerifier) missingClaim(claims jwt.MapClaims) string {
	if exp, _ := claims.GetExpirationTime(); exp == nil {
		return "exp"
	}
	if iss, _ := claims.GetIssuer(); v.issuer != "" && iss == "" {
		return "iss"
	}
	return "aud"
}

// knownScopes collects the scopes a token grants, sorted and without
// duplicates. Scopes anomalyd does not know are dropped rather than refused: a
// token may carry scopes for other services.
func knownScopes(claims jwt.MapClaims) []string {
	var out []string
	for _, name := range []string{"scope", "scp"} {
		switch s := claims[name].(type) {
		case string:
			out = append(out, strings.Fields(s)...)
		case []any:
			for _, e := range s {
				if e, ok := e.(string); ok {
					out = append(out, e)
				}
			}
		}
	}
	out = slices.DeleteFunc(out, func(s string) bool { return !domain.ValidScope(s) })
	if len(out) == 0 {
		return nil
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// openJWKS fetches the JWKS at rawURL and returns a key lookup over it that
// refreshes in the background until ctx ends.
func openJWKS(ctx context.Context, rawURL string, client *http.Client, logger *slog.Logger) (_ jwt.Keyfunc, err error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		// Not quoted: the URL may carry credentials.
		return nil, errors.New("bearer tokens: the JWKS URL must be an absolute http(s) URL")
	}
	r := urlRedactor{raw: rawURL, safe: safeURL(u)}

	if client == nil {
		client = &http.Client{Timeout: jwksTimeout}
	}
	limited := *client
	next := client.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	limited.Transport = limitedTransport{next: next, max: maxJWKSBytes}

	// The refresh goroutine starts before the first fetch: stop it if that fails.
	refreshCtx, stop := context.WithCancel(ctx)
	defer func() {
		if err != nil {
			stop()
		}
	}()
	cached, err := jwkset.NewStorageFromHTTP(rawURL, jwkset.HTTPClientStorageOptions{
		Client:          &limited,
		Ctx:             refreshCtx,
		HTTPTimeout:     jwksTimeout,
		RefreshInterval: jwksRefreshEvery,
		RefreshErrorHandler: func(_ context.Context, err error) {
			logger.Warn("JWKS refresh failed; keeping the previous keys", "url", r.safe, "err", r.error(err))
		},
	})
	if err != nil {
		return nil, fmt.Errorf("bearer tokens: fetch JWKS from %s: %s", r.safe, r.error(err))
	}
	all, err := cached.KeyReadAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("bearer tokens: read JWKS from %s: %s", r.safe, r.error(err))
	}
	if !slices.ContainsFunc(all, func(j jwkset.JWK) bool {
		k := publicKey(j.Key())
		return verifies(jwt.SigningMethodRS256.Alg(), k) || verifies(jwt.SigningMethodES256.Alg(), k)
	}) {
		return nil, fmt.Errorf("bearer tokens: the JWKS at %s holds no RS256 or ES256 key", r.safe)
	}

	// jwkset's own unknown-kid limiter makes a lookup wait for its next token
	// (up to RateLimitWaitMax, which also bounds the fetch), so it is left
	// unlimited here and unknownKIDGate decides, without waiting, whether a
	// missing kid may cause a fetch.
	refreshing, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{rawURL: cached},
		RateLimitWaitMax:  jwksTimeout,
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("bearer tokens: JWKS from %s: %s", r.safe, r.error(err))
	}
	kf, err := keyfunc.New(keyfunc.Options{
		Ctx: refreshCtx,
		Storage: unknownKIDGate{
			Storage: refreshing, cached: cached,
			limit: rate.NewLimiter(rate.Every(jwksUnknownKIDEvery), 1),
		},
		UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}, // never an encryption key
	})
	if err != nil {
		return nil, fmt.Errorf("bearer tokens: JWKS from %s: %s", r.safe, r.error(err))
	}
	return kf.KeyfuncCtx(refreshCtx), nil
}

// unknownKIDGate reads keys from the cache, and lets a kid the cache lacks
// fetch the JWKS again (through the embedded storage) at most once per limit
// interval; other lookups of unknown kids fail at once instead of queueing.
type unknownKIDGate struct {
	jwkset.Storage // refreshes on an unknown kid
	cached         jwkset.Storage
	limit          *rate.Limiter
}

// KeyRead returns the key with keyID, or an error wrapping jwkset.ErrKeyNotFound.
func (g unknownKIDGate) KeyRead(ctx context.Context, keyID string) (jwkset.JWK, error) {
	jwk, err := g.cached.KeyRead(ctx, keyID)
	if errors.Is(err, jwkset.ErrKeyNotFound) && g.limit.Allow() {
		return g.Storage.KeyRead(ctx, keyID)
	}
	return jwk, err
}

func publicKey(k any) any {
	if pk, ok := k.(interface{ Public() crypto.PublicKey }); ok {
		return pk.Public()
	}
	return k
}

// urlRedactor keeps credentials in a JWKS URL (user info, query, fragment)
// out of logs and errors.
type urlRedactor struct{ raw, safe string }

func safeURL(u *url.URL) string {
	s := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return s.String()
}

// error returns err's message with the URL redacted. net/http quotes the
// request URL (query included) in its errors, so that one is rebuilt.
func (r urlRedactor) error(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + " " + r.safe + ": " + strings.ReplaceAll(ue.Err.Error(), r.raw, r.safe)
	}
	return strings.ReplaceAll(err.Error(), r.raw, r.safe)
}

// limitedTransport cuts every response body off after max bytes, so a broken
// or hostile JWKS endpoint cannot make the verifier read without end; a cut
// body fails to decode and the previous keys stay.
type limitedTransport struct {
	next http.RoundTripper
	max  int64
}

func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = limitedBody{Reader: io.LimitReader(resp.Body, t.max), Closer: resp.Body}
	return resp, nil
}

type limitedBody struct {
	io.Reader
	io.Closer
}
