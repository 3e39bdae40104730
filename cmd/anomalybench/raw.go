package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/anomalyd/anomalyd/app"
	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore/jetstream"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
)

// Names of the raw ceiling's streams, apart from anomalyd's own.
const (
	rawStream     = "ANOMALYBENCH_RAW"
	rawSubject    = "anomalybench.raw"
	inprocStream  = "ANOMALYBENCH_INPROC"
	inprocSubject = "anomalybench.inproc"
)

// rawCeiling measures what JetStream alone gives with the store's settings:
// the appends of a report (publish to a new subject, expected last subject
// sequence 0) and the read-then-append of a resolve; and then, on the same
// server, anomalyd's own command service in this process (inProcess). With natsURL it uses that
// server's JetStream and deletes its stream afterwards; without, an embedded
// server on a temporary directory, with anomalyd's embedded defaults (file
// storage, periodic fsync, a loopback port) and connected to as anomalyd
// connects to its own (jetstream.ConnectEmbedded).
func rawCeiling(ctx context.Context, cfg Config, natsURL string, progress io.Writer) ([]*PhaseResult, error) {
	var nc *nats.Conn
	if natsURL != "" {
		var err error
		if nc, err = nats.Connect(natsURL, nats.Name("anomalybench-raw")); err != nil {
			return nil, fmt.Errorf("raw: connect to %s: %w", natsURL, err)
		}
	} else {
		dir, err := os.MkdirTemp("", "anomalybench-raw-*")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		ns, err := jetstream.StartEmbedded(jetstream.EmbeddedConfig{DataDir: dir, Host: "127.0.0.1", Port: -1}, nil)
		if err != nil {
			return nil, fmt.Errorf("raw: %w", err)
		}
		defer ns.WaitForShutdown()
		defer ns.Shutdown()
		if nc, err = jetstream.ConnectEmbedded(ns, "anomalybench-raw"); err != nil {
			return nil, fmt.Errorf("raw: %w", err)
		}
	}
	defer nc.Close()
	js, err := njs.New(nc)
	if err != nil {
		return nil, fmt.Errorf("raw: %w", err)
	}
	setup, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// A stream left by a run that was killed would make every expected
	// sequence wrong; it holds nothing but benchmark messages.
	for _, name := range []string{rawStream, inprocStream} {
		if err := js.DeleteStream(setup, name); err != nil && !errors.Is(err, njs.ErrStreamNotFound) {
			return nil, fmt.Errorf("raw: delete old stream %s: %w", name, err)
		}
	}
	// The settings of anomalyd's events stream (eventstore/jetstream.New).
	stream, err := js.CreateStream(setup, njs.StreamConfig{
		Name: rawStream, Subjects: []string{rawSubject + ".>"}, Storage: njs.FileStorage, Replicas: 1,
		AllowDirect: true, DenyDelete: true, DenyPurge: true, Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("raw: create stream %s: %w", rawStream, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		js.DeleteStream(dctx, rawStream)
	}()

	subjects := make([]string, cfg.Anomalies)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("%s.bench-%d.anomaly.%s", rawSubject, i%cfg.Tenants, uuid.New())
	}
	payload := []byte(strings.Repeat("x", cfg.RawSize))
	publish := func(ctx context.Context, subj string, version string, expect uint64) (string, string) {
		ctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
		defer cancel()
		msg := nats.NewMsg(subj)
		msg.Data = payload
		msg.Header.Set(jetstream.VersionHeader, version)
		if _, err := js.PublishMsg(ctx, msg, njs.WithMsgID(uuid.NewString()), njs.WithExpectLastSequencePerSubject(expect)); err != nil {
			return natsKind(err), err.Error()
		}
		return "", ""
	}

	pub := newPhase("raw-publish", cfg.Anomalies, cfg.Clients, 0)
	pub.run(ctx, progress, func(ctx context.Context, i int) (string, string) {
		return publish(ctx, subjects[i], "1", 0)
	})
	results := []*PhaseResult{pub.result()}
	if ctx.Err() != nil {
		return results, nil
	}
	rw := newPhase("raw-read-write", cfg.Anomalies, cfg.Clients, 0)
	rw.run(ctx, progress, func(ctx context.Context, i int) (string, string) {
		if !pub.ok[i] {
			return "no message to read", "its raw-publish failed"
		}
		gctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
		last, err := stream.GetLastMsgForSubject(gctx, subjects[i])
		cancel()
		if err != nil {
			return natsKind(err), err.Error()
		}
		return publish(ctx, subjects[i], "2", last.Sequence)
	})
	results = append(results, rw.result())
	if ctx.Err() != nil {
		return results, nil
	}
	inproc, err := inProcess(ctx, cfg, js, progress)
	return append(results, inproc...), err
}

// inProcess measures anomalyd's command service without HTTP: reports and
// then resolves of cfg.Anomalies anomalies by cfg.Clients goroutines, through
// the JetStream event store on a stream of its own (deleted afterwards), as
// the server runs them after authentication and decoding. The store's
// settings are the raw phases', so the rates compare like for like.
func inProcess(ctx context.Context, cfg Config, js njs.JetStream, progress io.Writer) ([]*PhaseResult, error) {
	setup, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	store, err := jetstream.New(setup, js, jetstream.Config{Stream: inprocStream, SubjectPrefix: inprocSubject})
	if err != nil {
		return nil, fmt.Errorf("in-process: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		js.DeleteStream(dctx, inprocStream)
	}()
	svc := app.NewService(store)
	principals := make([]domain.Principal, cfg.Tenants)
	for i := range principals {
		principals[i] = domain.Principal{Tenant: fmt.Sprintf("bench-%d", i), Scopes: domain.AllScopes,
			Actor: domain.Actor{ID: "anomalybench", Kind: domain.ActorAPIKey}}
	}
	agents := make([]uuid.UUID, cfg.agents())
	for i := range agents {
		agents[i] = uuid.New()
	}
	ids := make([]uuid.UUID, cfg.Anomalies)
	command := func(ctx context.Context, run func(context.Context) error) (string, string) {
		ctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
		defer cancel()
		if err := run(ctx); err != nil {
			return "command: " + string(domain.ErrorCode(err)), err.Error()
		}
		return "", ""
	}

	report := newPhase("in-process-report", cfg.Anomalies, cfg.Clients, 0)
	report.run(ctx, progress, func(ctx context.Context, i int) (string, string) {
		return command(ctx, func(ctx context.Context) error {
			res, err := svc.Report(ctx, principals[i%len(principals)], domain.ReportAnomaly{
				AgentID: agents[i%len(agents)], AnomalyType: "rate_spike", Severity: domain.SeverityHigh,
			})
			ids[i] = res.Anomaly.ID
			return err
		})
	})
	results := []*PhaseResult{report.result()}
	if ctx.Err() != nil {
		return results, nil
	}
	resolve := newPhase("in-process-resolve", cfg.Anomalies, cfg.Clients, 0)
	resolve.run(ctx, progress, func(ctx context.Context, i int) (string, string) {
		if !report.ok[i] {
			return "no anomaly to resolve", "its report failed"
		}
		return command(ctx, func(ctx context.Context) error {
			_, err := svc.Resolve(ctx, principals[i%len(principals)], ids[i],
				domain.ResolveAnomaly{Resolution: domain.ResolutionFalsePositive})
			return err
		})
	})
	return append(results, resolve.result()), nil
}

// natsKind names a JetStream error by its cause.
func natsKind(err error) string {
	var apiErr *njs.APIError
	switch {
	case errors.As(err, &apiErr):
		return fmt.Sprintf("jetstream: error %d", apiErr.ErrorCode)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return "nats: timeout"
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, njs.ErrNoStreamResponse):
		return "nats: no responders"
	}
	return "nats: other"
}
