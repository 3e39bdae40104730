package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/anomalyd/anomalyd/domain"
	"github.com/anomalyd/anomalyd/eventstore"
	anomalyhttp "github.com/anomalyd/anomalyd/http"
	"github.com/anomalyd/anomalyd/projections"
	"github.com/google/uuid"
)

// errDiffers makes rebuild exit non-zero once it has reported the differences.
var errDiffers = errors.New("the read models differ from the log")

// models is a set of read models rebuilt from the first event.
type models struct {
	anomalies *projections.Anomalies
	agents    *projections.Agents
}

func rebuildModels(ctx context.Context, store eventstore.Store, progress io.Writer) (models, error) {
	m := models{anomalies: projections.NewAnomalies(), agents: projections.NewAgents()}
	fold := projections.Multi{m.anomalies, m.agents, projections.NewPolicies()}
	defer projections.ReplayGC()()
	err := scanLog(ctx, store, progress, func(r eventstore.Recorded) error { return fold.Apply(ctx, r) })
	return m, err
}

// views renders every anomaly and agent of tenant as the API shows them, keyed
// "anomaly <id>" and "agent <id>", decoded into plain JSON values.
func (m models) views(tenant string) (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	agents := map[uuid.UUID]bool{}
	for before := uint64(0); ; {
		page, next := m.anomalies.List(tenant, projections.Filter{}, before, 200)
		for _, v := range page {
			if err := putView(out, "anomaly "+v.ID.String(), anomalyhttp.AnomalyRepresentation(v)); err != nil {
				return nil, err
			}
			agents[v.AgentID] = true
		}
		if next == 0 {
			break
		}
		before = next
	}
	for id := range agents {
		if c, ok := m.agents.Get(tenant, id); ok {
			if err := putView(out, "agent "+id.String(), anomalyhttp.AgentRepresentation(id, c)); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func putView(out map[string]map[string]any, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	out[key] = m
	return nil
}

// rebuild rebuilds the read models from the first event into fresh memory and
// compares them with what the running service serves for a tenant (--api,
// --key, --tenant), or, without --api, with a second rebuild of every tenant,
// which shows whether the fold is deterministic.
func rebuild(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	open := storeFlags(fs, getenv)
	api := fs.String("api", "", "base URL of the running anomalyd to compare with, e.g. http://127.0.0.1:8080")
	key := fs.String("key", getenv("ANOMALYD_API_KEY"), "API key with anomalies:read and agents:read, for --api (env ANOMALYD_API_KEY)")
	tenant := fs.String("tenant", "", "the tenant to compare (with --api: the key's tenant)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *api != "" && (*key == "" || !domain.ValidTenant(*tenant)) {
		return errors.New("--api needs --key and --tenant")
	}
	store, closeStore, err := open(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	start := time.Now()
	built, err := rebuildModels(ctx, store, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "rebuilt the read models from the log in %s\n", time.Since(start).Round(time.Millisecond))

	var tenants []string
	var against func(tenant string) (map[string]map[string]any, error)
	if *api != "" {
		tenants = []string{*tenant}
		c := apiClient{base: strings.TrimRight(*api, "/"), key: *key, tenant: *tenant, http: &http.Client{Timeout: 30 * time.Second}}
		against = func(string) (map[string]map[string]any, error) { return c.views(ctx) }
	} else {
		second, err := rebuildModels(ctx, store, stderr)
		if err != nil {
			return err
		}
		tenants = built.anomalies.Tenants()
		if *tenant != "" {
			tenants = []string{*tenant}
		}
		against = second.views
	}
	differences, compared := 0, 0
	for _, t := range tenants {
		want, err := built.views(t)
		if err != nil {
			return err
		}
		got, err := against(t)
		if err != nil {
			return err
		}
		compared += len(want)
		differences += diffViews(stdout, t, want, got)
	}
	if differences > 0 {
		fmt.Fprintf(stdout, "%d differences between the log and the read models served\n", differences)
		return errDiffers
	}
	fmt.Fprintf(stdout, "ok: %d anomalies and agents in %d tenants match the log\n", compared, len(tenants))
	return nil
}

// diffViews prints every difference between the views rebuilt from the log
// (want) and those served (got), and returns how many there are.
func diffViews(w io.Writer, tenant string, want, got map[string]map[string]any) int {
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	n := 0
	for _, k := range sorted {
		wv, inLog := want[k]
		gv, served := got[k]
		switch {
		case !inLog:
			fmt.Fprintf(w, "DIFF %s %s: served, but the log has no such thing\n", tenant, k)
			n++
		case !served:
			fmt.Fprintf(w, "DIFF %s %s: in the log, but not served\n", tenant, k)
			n++
		default:
			for _, f := range fieldNames(wv, gv) {
				if !reflect.DeepEqual(wv[f], gv[f]) {
					fmt.Fprintf(w, "DIFF %s %s field %s: served %v, the log says %v\n", tenant, k, f, jsonText(gv[f]), jsonText(wv[f]))
					n++
				}
			}
		}
	}
	return n
}

func fieldNames(a, b map[string]any) []string {
	set := map[string]bool{}
	for k := range a {
		set[k] = true
	}
	for k := range b {
		set[k] = true
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// apiClient reads what a running anomalyd serves for one tenant.
type apiClient struct {
	base, key, tenant string
	http              *http.Client
}

func (c apiClient) get(ctx context.Context, path string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-API-Key", c.key)
	req.Header.Set("X-Tenant-ID", c.tenant)
	res, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return res.StatusCode, fmt.Errorf("GET %s: %s: %s", path, res.Status, strings.TrimSpace(string(b)))
	}
	return res.StatusCode, json.NewDecoder(res.Body).Decode(v)
}

// views lists every anomaly the service serves, then each of their agents.
func (c apiClient) views(ctx context.Context) (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	agents := map[string]bool{}
	cursor := ""
	for {
		var page struct {
			Items      []map[string]any `json:"items"`
			NextCursor *string          `json:"next_cursor"`
		}
		path := "/v1/anomalies?limit=200"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		if _, err := c.get(ctx, path, &page); err != nil {
			return nil, err
		}
		for _, a := range page.Items {
			id, _ := a["id"].(string)
			out["anomaly "+id] = a
			if agent, _ := a["agent_id"].(string); agent != "" {
				agents[agent] = true
			}
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	for agent := range agents {
		var a map[string]any
		if _, err := c.get(ctx, "/v1/agents/"+agent, &a); err != nil {
			return nil, err
		}
		out["agent "+agent] = a
	}
	return out, nil
}
