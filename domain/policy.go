package domain

import (
	"fmt"
	"maps"
	"strings"
)

// CategoryPolicy is the stream category of a tenant's auto-response policy; the
// stream's id is PolicyStreamID.
const (
	CategoryPolicy = "policy"
	PolicyStreamID = "auto_response"
)

// EventPolicyChanged is the type of the event that records a new auto-response
// policy of a tenant. It is stored in the log: never rename it.
const EventPolicyChanged = "policy.changed"

// PolicyChanged is the payload of policy.changed: the whole new policy, and where
// it came from.
type PolicyChanged struct {
	AutoResponse map[Severity]Containment `json:"auto_response"`
	Source       string                   `json:"source"`
}

// PolicyStream returns the stream of a tenant's auto-response policy.
func PolicyStream(tenant string) StreamID {
	return StreamID{Tenant: tenant, Category: CategoryPolicy, ID: PolicyStreamID}
}

// Complete returns p with every severity it leaves out set to the default.
func (p Policy) Complete() Policy {
	out := DefaultPolicy()
	maps.Copy(out, p)
	return out
}

// Equal reports whether p and q apply the same auto-response to every severity.
func (p Policy) Equal(q Policy) bool { return maps.Equal(p.Complete(), q.Complete()) }

// String lists the policy as severity=containment pairs, weakest severity first.
func (p Policy) String() string {
	c := p.Complete()
	var parts []string
	for _, s := range []Severity{SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical} {
		parts = append(parts, fmt.Sprintf("%s=%s", s, c[s]))
	}
	return strings.Join(parts, " ")
}

// ParsePolicy reads a policy from severity → containment names. A severity left
// out keeps its default. It returns an INVALID_INPUT *Error for an unknown
// severity or containment, and for "revoked": an auto-response never revokes,
// only a decision does.
func ParsePolicy(m map[string]string) (Policy, error) {
	p := Policy{}
	for sev, name := range m {
		s, err := ParseSeverity(sev)
		if err != nil {
			return nil, err
		}
		c, err := ParseContainment(name)
		if err != nil {
			return nil, err
		}
		if c == ContainmentRevoked {
			return nil, Errorf(EINVALID, "severity %s: an auto-response cannot revoke; use quarantined", sev)
		}
		p[s] = c
	}
	return p.Complete(), nil
}

// TenantPolicy is the auto-response policy of one tenant as its stream records it.
type TenantPolicy struct {
	tenant  string
	policy  Policy
	version uint64
	hash    string
	changes []Event
}

// LoadPolicy folds the events of a tenant's policy stream; a tenant without any
// has the default policy.
func LoadPolicy(tenant string, events []Event) (*TenantPolicy, error) {
	t := &TenantPolicy{tenant: tenant, policy: DefaultPolicy()}
	if err := VerifyChain(events); err != nil {
		return nil, err
	}
	for _, e := range events {
		if err := t.apply(e); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *TenantPolicy) apply(e Event) error {
	if e.Version != t.version+1 || e.Type != EventPolicyChanged {
		return Errorf(EINTERNAL, "policy of %s: unexpected %s at version %d after %d", t.tenant, e.Type, e.Version, t.version)
	}
	d, err := payloadOf[PolicyChanged](e)
	if err != nil {
		return err
	}
	t.policy, t.version, t.hash = Policy(d.AutoResponse).Complete(), e.Version, e.Hash
	return nil
}

// Policy returns the policy in force.
func (t *TenantPolicy) Policy() Policy { return t.policy }

// Changes returns the events recorded since the policy was loaded.
func (t *TenantPolicy) Changes() []Event { return t.changes }

// LoadedVersion returns the version of the stream when the policy was loaded.
func (t *TenantPolicy) LoadedVersion() uint64 { return t.version - uint64(len(t.changes)) }

// Change records p as the tenant's policy, from source, unless it is the policy
// in force already; it reports whether it recorded a change.
func (t *TenantPolicy) Change(p Policy, source string, m Meta) (bool, error) {
	p = p.Complete()
	if p.Equal(t.policy) {
		return false, nil
	}
	for s, c := range p {
		if c < ContainmentNone || c >= ContainmentRevoked {
			return false, Errorf(EINVALID, "severity %s: auto-response %s is not allowed", s, c)
		}
	}
	e, err := newEvent(m, PolicyStream(t.tenant), t.version+1, t.hash, EventPolicyChanged, PolicyChanged{AutoResponse: p, Source: source})
	if err != nil {
		return false, err
	}
	if err := t.apply(e); err != nil {
		return false, err
	}
	t.changes = append(t.changes, e)
	return true, nil
}
