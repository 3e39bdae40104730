// Package app holds the command services: each loads an aggregate from the event
// store, lets the domain decide, and appends the outcome with the version it
// loaded, retrying when another writer got there first.
package app

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
)

// maxAttempts bounds how often a command is decided again after losing a race.
const maxAttempts = 5

// Service executes the anomaly commands against an event store.
type Service struct {
	store  eventstore.Store
	now    func() time.Time
	newID  func() uuid.UUID
	policy func(tenant string) domain.Policy
	agents Containments
	cache  *anomalyCache
	hits   atomic.Uint64 // commands decided on a kept state, see CacheStats
	loads  atomic.Uint64 // anomalies read and checked for a command
}

// Option configures a Service.
type Option func(*Service)

// WithClock sets the clock the service stamps events with.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithIDs sets the generator of anomaly and event ids.
func WithIDs(newID func() uuid.UUID) Option { return func(s *Service) { s.newID = newID } }

// WithPolicy sets how a tenant's auto-response policy is found.
func WithPolicy(p func(tenant string) domain.Policy) Option { return func(s *Service) { s.policy = p } }

// WithContainments sets where agent commands read an agent's containment.
func WithContainments(c Containments) Option { return func(s *Service) { s.agents = c } }

// WithCacheSize sets how many anomalies the service keeps the state of between
// commands (DefaultCacheSize by default); 0 reads every anomaly's stream before
// every command.
func WithCacheSize(n int) Option { return func(s *Service) { s.cache = newAnomalyCache(n) } }

// NewService returns a Service over store. By default it uses the system clock,
// random UUIDs, and the default policy for every tenant.
func NewService(store eventstore.Store, opts ...Option) *Service {
	s := &Service{
		store:  store,
		now:    time.Now,
		newID:  uuid.New,
		policy: func(string) domain.Policy { return domain.DefaultPolicy() },
		cache:  newAnomalyCache(DefaultCacheSize),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Result is the outcome of a command: the anomaly's state after it, and the
// store position of the recorded event, which a reader waits for to see it.
type Result struct {
	Anomaly  domain.AnomalyState
	Position uint64
}

func (s *Service) meta(ctx context.Context, p domain.Principal) domain.Meta {
	id, ok := commandID(ctx)
	if !ok {
		id = s.newID()
	}
	return domain.Meta{EventID: id, At: s.now().UTC(), Actor: p.Actor, Decode: eventstore.DecodeData}
}

// Report opens an anomaly for the principal's tenant. A reference to an earlier
// anomaly must name one of the same tenant. It returns INVALID_INPUT for input
// that breaks a rule (a dangling reference included) and INTERNAL_ERROR when the
// store fails.
func (s *Service) Report(ctx context.Context, p domain.Principal, cmd domain.ReportAnomaly) (Result, error) {
	cmd.Tenant = p.Tenant
	cmd.AnomalyID = s.newID()
	if id, ok := commandID(ctx); ok {
		cmd.AnomalyID = anomalyIDFor(id)
		recs, err := s.store.ReadStream(ctx, domain.AnomalyStream(p.Tenant, cmd.AnomalyID), 0)
		if err != nil {
			return Result{}, fmt.Errorf("load %s: %w", cmd.AnomalyID, err)
		}
		if mine, ok := ownEvent(recs, id); ok {
			return replayed(mine)
		}
	}
	if ref := cmd.ReferencesAnomalyID; ref != nil {
		recs, err := s.store.ReadStream(ctx, domain.AnomalyStream(p.Tenant, *ref), 0)
		if err != nil {
			return Result{}, fmt.Errorf("load referenced anomaly: %w", err)
		}
		if len(recs) == 0 {
			return Result{}, &domain.Error{Code: domain.EINVALID,
				Message: "references_anomaly_id names no anomaly of this tenant",
				Details: map[string]any{"field": "references_anomaly_id"}}
		}
	}
	a, err := domain.Report(cmd, s.policy(p.Tenant), s.meta(ctx, p))
	if err != nil {
		return Result{}, err
	}
	return s.save(ctx, a)
}

// Investigate moves an open anomaly of the principal's tenant to investigating.
// It returns NOT_FOUND, CONFLICT unless the anomaly is open, INVALID_INPUT and
// INTERNAL_ERROR.
func (s *Service) Investigate(ctx context.Context, p domain.Principal, id uuid.UUID, cmd domain.InvestigateAnomaly) (Result, error) {
	return s.update(ctx, domain.AnomalyStream(p.Tenant, id), func(a *domain.Anomaly) error {
		return a.Investigate(cmd, s.meta(ctx, p))
	})
}

// Resolve closes an anomaly of the principal's tenant. It returns NOT_FOUND when
// the tenant has no such anomaly, CONFLICT when it is already closed (also when
// a concurrent command closed it first), INVALID_INPUT for a bad resolution, and
// INTERNAL_ERROR when the store fails.
func (s *Service) Resolve(ctx context.Context, p domain.Principal, id uuid.UUID, cmd domain.ResolveAnomaly) (Result, error) {
	return s.update(ctx, domain.AnomalyStream(p.Tenant, id), func(a *domain.Anomaly) error {
		return a.Resolve(cmd, s.meta(ctx, p))
	})
}

// Dismiss closes an anomaly of the principal's tenant without a determination.
// It returns NOT_FOUND, CONFLICT when it is already closed, INVALID_INPUT
// without a reason, and INTERNAL_ERROR.
func (s *Service) Dismiss(ctx context.Context, p domain.Principal, id uuid.UUID, cmd domain.DismissAnomaly) (Result, error) {
	return s.update(ctx, domain.AnomalyStream(p.Tenant, id), func(a *domain.Anomaly) error {
		return a.Dismiss(cmd, s.meta(ctx, p))
	})
}

// update loads an anomaly, applies decide and appends what it recorded; when the
// append loses a race it starts again from a fresh load, so that the decision is
// always taken on the latest state. The first attempt decides on the cached
// state when there is one (see anomalyCache); when that decision is refused,
// or its append, the command is decided again on a fresh load, so that neither
// an answer nor an event ever rests on a state the store has moved past. A
// command with an id always loads: its retry must find its own event.
func (s *Service) update(ctx context.Context, stream domain.StreamID, decide func(*domain.Anomaly) error) (Result, error) {
	cmd, hasID := commandID(ctx)
	for attempt := 1; ; attempt++ {
		var (
			a      *domain.Anomaly
			state  domain.AnomalyState
			cached bool
		)
		if attempt == 1 && !hasID {
			state, cached = s.cache.get(stream)
		}
		if cached {
			s.hits.Add(1)
			a = domain.ResumeAnomaly(state)
		} else {
			s.loads.Add(1)
			recs, err := s.store.ReadStream(ctx, stream, 0)
			if err != nil {
				return Result{}, fmt.Errorf("load %s: %w", stream, err)
			}
			if mine, ok := ownEvent(recs, cmd); hasID && ok {
				return replayed(mine)
			}
			if a, err = domain.LoadAnomaly(events(recs)); err != nil {
				return Result{}, err
			}
			s.cache.put(stream, a.State())
		}
		if err := decide(a); err != nil {
			if cached {
				continue
			}
			return Result{}, err
		}
		res, err := s.save(ctx, a)
		if errors.Is(err, domain.ErrConcurrency) && attempt <= maxAttempts {
			continue
		}
		return res, err
	}
}

// save appends what a recorded and keeps its new state; after a failed append
// the anomaly's state is unknown (the event may be stored even so) and is
// forgotten.
func (s *Service) save(ctx context.Context, a *domain.Anomaly) (Result, error) {
	st := a.State()
	stream := domain.AnomalyStream(st.Tenant, st.ID)
	rec, err := s.appendAll(ctx, a.LoadedVersion(), a.Changes())
	if err != nil {
		s.cache.drop(stream)
		return Result{}, err
	}
	s.cache.put(stream, st)
	return Result{Anomaly: st, Position: rec.Position}, nil
}

// appendAll appends events recorded by one command, starting at version
// expected, and returns the last one as stored.
func (s *Service) appendAll(ctx context.Context, expected uint64, evs []domain.Event) (eventstore.Recorded, error) {
	var last eventstore.Recorded
	for _, e := range evs {
		rec, err := s.store.Append(ctx, expected, e)
		if err != nil {
			return eventstore.Recorded{}, fmt.Errorf("append %s: %w", e.Type, err)
		}
		expected, last = e.Version, rec
	}
	return last, nil
}

// AnomalyEvents returns the events of an anomaly of the principal's tenant,
// oldest first, read from the log. It returns NOT_FOUND when the tenant has no
// such anomaly and INTERNAL_ERROR when the store fails.
func (s *Service) AnomalyEvents(ctx context.Context, p domain.Principal, id uuid.UUID) ([]domain.Event, error) {
	recs, err := s.store.ReadStream(ctx, domain.AnomalyStream(p.Tenant, id), 0)
	if err != nil {
		return nil, fmt.Errorf("read anomaly %s: %w", id, err)
	}
	if len(recs) == 0 {
		return nil, domain.Errorf(domain.ENOTFOUND, "anomaly %s not found", id)
	}
	return events(recs), nil
}
