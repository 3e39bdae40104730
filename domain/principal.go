package domain

import "slices"

// Scopes a credential can grant.
const (
	ScopeAnomaliesRead    = "anomalies:read"
	ScopeAnomaliesWrite   = "anomalies:write"
	ScopeAnomaliesResolve = "anomalies:resolve"
	ScopeAgentsRead       = "agents:read"
	ScopeAgentsWrite      = "agents:write"
)

// AllScopes lists every scope, in the order the documentation gives them.
var AllScopes = []string{ScopeAnomaliesRead, ScopeAnomaliesWrite, ScopeAnomaliesResolve, ScopeAgentsRead, ScopeAgentsWrite}

// ValidScope reports whether s is a known scope.
func ValidScope(s string) bool { return slices.Contains(AllScopes, s) }

// Principal is an authenticated caller: who it is, the one tenant its credential
// belongs to, and what it may do there.
type Principal struct {
	Actor  Actor
	Tenant string
	Scopes []string
}

// HasScope reports whether the principal was granted scope s.
func (p Principal) HasScope(s string) bool { return slices.Contains(p.Scopes, s) }
