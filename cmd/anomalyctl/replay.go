package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	"github.com/google/uuid"
)

// eventFilter selects events of the log by tenant, anomaly, agent, type and
// time range; zero fields match everything.
type eventFilter struct {
	tenant       string
	anomaly      uuid.UUID
	agent        uuid.UUID
	types        map[string]bool
	since, until time.Time // inclusive
}

func (f eventFilter) match(e domain.Event) bool {
	switch {
	case f.tenant != "" && e.TenantID != f.tenant,
		f.anomaly != uuid.Nil && e.Stream != domain.AnomalyStream(f.tenant, f.anomaly),
		len(f.types) > 0 && !f.types[e.Type],
		!f.since.IsZero() && e.OccurredAt.Before(f.since),
		!f.until.IsZero() && e.OccurredAt.After(f.until):
		return false
	}
	if f.agent != uuid.Nil {
		id, ok := domain.AgentOf(e)
		return ok && id == f.agent
	}
	return true
}

// filterFlags declares the selection flags and returns a function that checks
// and builds the filter once they are parsed.
func filterFlags(fs *flag.FlagSet) func() (eventFilter, error) {
	tenant := fs.String("tenant", "", "only this tenant's events")
	anomaly := fs.String("anomaly", "", "only this anomaly's events (needs --tenant)")
	agent := fs.String("agent", "", "only events concerning this agent: its anomalies and its own decisions")
	types := fs.String("type", "", "only these event types, comma-separated (e.g. anomaly.resolved,agent.revoked)")
	since := fs.String("since", "", "only events that occurred at or after this RFC 3339 time")
	until := fs.String("until", "", "only events that occurred at or before this RFC 3339 time")
	return func() (eventFilter, error) {
		var f eventFilter
		var err error
		if *tenant != "" && !domain.ValidTenant(*tenant) {
			return f, fmt.Errorf("--tenant %q: must match [A-Za-z0-9_-]{1,64}", *tenant)
		}
		f.tenant = *tenant
		if *anomaly != "" {
			if f.anomaly, err = uuid.Parse(*anomaly); err != nil || f.tenant == "" {
				return f, fmt.Errorf("--anomaly %q: must be a UUID, given with --tenant", *anomaly)
			}
		}
		if *agent != "" {
			if f.agent, err = uuid.Parse(*agent); err != nil {
				return f, fmt.Errorf("--agent %q: must be a UUID", *agent)
			}
		}
		for _, t := range strings.Split(*types, ",") {
			if t = strings.TrimSpace(t); t != "" {
				if f.types == nil {
					f.types = map[string]bool{}
				}
				f.types[t] = true
			}
		}
		for _, tf := range []struct {
			name string
			raw  string
			dst  *time.Time
		}{{"since", *since, &f.since}, {"until", *until, &f.until}} {
			if tf.raw == "" {
				continue
			}
			if *tf.dst, err = time.Parse(time.RFC3339Nano, tf.raw); err != nil {
				return f, fmt.Errorf("--%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", tf.name, tf.raw)
			}
		}
		return f, nil
	}
}

// replay streams the selected events of the log to stdout as NDJSON, oldest
// first: each line is the stored envelope with its store position.
func replay(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	open := storeFlags(fs, getenv)
	filter := filterFlags(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	f, err := filter()
	if err != nil {
		return err
	}
	store, closeStore, err := open(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	n := 0
	err = scanLog(ctx, store, stderr, func(r eventstore.Recorded) error {
		if !f.match(r.Event) {
			return nil
		}
		line, err := replayLine(r)
		if err != nil {
			return err
		}
		n++
		_, err = out.Write(line)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "replay: %d events\n", n)
	return nil
}

// replayLine is the stored envelope with "position" added in front.
func replayLine(r eventstore.Recorded) ([]byte, error) {
	env, err := eventstore.MarshalEvent(r.Event)
	if err != nil {
		return nil, err
	}
	pos, _ := json.Marshal(r.Position)
	line := append([]byte(`{"position":`), pos...)
	line = append(line, ',')
	line = append(line, env[1:]...)
	return append(line, '\n'), nil
}
