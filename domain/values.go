package domain

import "regexp"

// Status is the lifecycle status of an anomaly.
type Status string

// Statuses. Resolved and dismissed are terminal.
const (
	StatusOpen          Status = "open"
	StatusInvestigating Status = "investigating"
	StatusResolved      Status = "resolved"
	StatusDismissed     Status = "dismissed"
)

// Terminal reports whether no command may change an anomaly in status s.
func (s Status) Terminal() bool { return s == StatusResolved || s == StatusDismissed }

// Severity ranks an anomaly; the tenant's policy maps it to an auto-response.
type Severity string

// Severities, weakest first.
const (
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// ParseSeverity returns the severity named s, or an INVALID_INPUT *Error.
func ParseSeverity(s string) (Severity, error) {
	switch v := Severity(s); v {
	case SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical:
		return v, nil
	}
	return "", &Error{Code: EINVALID, Message: "severity must be one of low, medium, high, critical",
		Details: map[string]any{"field": "severity", "value": s}}
}

// Resolution is an investigator's determination that closes an anomaly.
type Resolution string

// Resolutions.
const (
	ResolutionFalsePositive Resolution = "false_positive"
	ResolutionMitigated     Resolution = "mitigated"
	ResolutionAcceptedRisk  Resolution = "accepted_risk"
	ResolutionAgentRevoked  Resolution = "agent_revoked"
)

// ParseResolution returns the resolution named s, or an INVALID_INPUT *Error.
func ParseResolution(s string) (Resolution, error) {
	switch v := Resolution(s); v {
	case ResolutionFalsePositive, ResolutionMitigated, ResolutionAcceptedRisk, ResolutionAgentRevoked:
		return v, nil
	}
	return "", &Error{Code: EINVALID,
		Message: "resolution must be one of false_positive, mitigated, accepted_risk, agent_revoked",
		Details: map[string]any{"field": "resolution", "value": s}}
}

// Effect is what a closing decision does to the containment an anomaly applied.
type Effect string

// Effects of a resolution (or a dismissal) on the agent.
const (
	EffectRelease Effect = "release" // auto-response reversed
	EffectKeep    Effect = "keep"    // containment holds until a manual restore
	EffectRevoke  Effect = "revoke"  // the agent is revoked for good
)

// Effect returns what resolution r does to the agent's containment.
func (r Resolution) Effect() Effect {
	switch r {
	case ResolutionMitigated:
		return EffectKeep
	case ResolutionAgentRevoked:
		return EffectRevoke
	default:
		return EffectRelease
	}
}

// Containment is an agent's restriction. The order of the constants is their
// strength: an agent held by several anomalies gets the strongest.
type Containment int

// Containments, weakest first.
const (
	ContainmentNone Containment = iota
	ContainmentThrottled
	ContainmentSuspended
	ContainmentQuarantined
	ContainmentRevoked
)

var containmentNames = [...]string{"none", "throttled", "suspended", "quarantined", "revoked"}

// String returns the containment's wire name.
func (c Containment) String() string {
	if c < 0 || int(c) >= len(containmentNames) {
		return "unknown"
	}
	return containmentNames[c]
}

// ParseContainment returns the containment with wire name s, or an INVALID_INPUT *Error.
func ParseContainment(s string) (Containment, error) {
	if c, ok := containmentNamed(s); ok {
		return c, nil
	}
	return 0, Errorf(EINVALID, "unknown containment %q", s)
}

// containmentNamed returns the containment with wire name name. Given bytes,
// it compares them in place, without a string copy.
func containmentNamed[T string | []byte](name T) (Containment, bool) {
	for i, n := range containmentNames {
		if n == string(name) {
			return Containment(i), true
		}
	}
	return 0, false
}

// MarshalText encodes the containment as its wire name.
func (c Containment) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText decodes a wire name. A known name allocates nothing, since a
// replay decodes one per reported event; only an unknown one is copied, into
// the error.
func (c *Containment) UnmarshalText(b []byte) error {
	v, ok := containmentNamed(b)
	if !ok {
		_, err := ParseContainment(string(b))
		return err
	}
	*c = v
	return nil
}

// Policy maps severities to the auto-response applied on report.
type Policy map[Severity]Containment

// DefaultPolicy is the auto-response of a tenant that has not configured one.
func DefaultPolicy() Policy {
	return Policy{
		SeverityLow:      ContainmentNone,
		SeverityMedium:   ContainmentThrottled,
		SeverityHigh:     ContainmentSuspended,
		SeverityCritical: ContainmentQuarantined,
	}
}

// AutoResponse returns the containment p applies to an anomaly of severity s.
func (p Policy) AutoResponse(s Severity) Containment {
	if c, ok := p[s]; ok && c < ContainmentRevoked {
		return c
	}
	return DefaultPolicy()[s]
}

var anomalyTypePattern = regexp.MustCompile(`^[a-z0-9_.-]{1,64}$`)

// ValidAnomalyType reports whether s is an acceptable anomaly type: a known type
// or any lower-case token [a-z0-9_.-]{1,64}.
func ValidAnomalyType(s string) bool { return anomalyTypePattern.MatchString(s) }
