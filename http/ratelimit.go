package http

import (
	"math"
	"net/http"
	"strconv"
	"sync"

	"github.com/anomalyd/anomalyd/domain"
	"golang.org/x/time/rate"
)

// tenantLimiter keeps one token bucket per tenant, so that one tenant's burst
// cannot starve the others. Only authenticated tenants reach it, so the number
// of buckets is bounded by the tenants that hold credentials.
type tenantLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newTenantLimiter(perSecond float64, burst int) *tenantLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &tenantLimiter{limit: rate.Limit(perSecond), burst: max(burst, 1), buckets: map[string]*rate.Limiter{}}
}

// allow takes a token from tenant's bucket; when there is none it returns how
// many whole seconds to wait.
func (l *tenantLimiter) allow(tenant string) (bool, int) {
	l.mu.Lock()
	b := l.buckets[tenant]
	if b == nil {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[tenant] = b
	}
	l.mu.Unlock()
	r := b.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, max(1, int(math.Ceil(d.Seconds())))
	}
	return true, 0
}

// withRateLimit answers 429 LIMIT_EXCEEDED with Retry-After once a tenant has
// spent its bucket.
func (s *Server) withRateLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.limiter != nil {
			tenant := principal(r).Tenant
			if ok, wait := s.limiter.allow(tenant); !ok {
				w.Header().Set("Retry-After", strconv.Itoa(wait))
				s.Error(w, r, &domain.Error{Code: domain.ELIMIT,
					Message: "rate limit of tenant " + tenant + " exceeded; retry after " + strconv.Itoa(wait) + " s",
					Details: map[string]any{"retry_after_seconds": wait}})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
