package main

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serverSample is what the server's /metrics say at one moment: its CPU time
// and, per route, how many requests it served and how long they took in all.
// Two samples around a phase split the client's latency into the server's own
// handling and everything outside it (client, loopback, queueing for a CPU).
type serverSample struct {
	cpu      float64
	count    map[string]float64 // route → requests
	sum      map[string]float64 // route → seconds
	kept     float64            // commands decided on an anomaly state the server kept
	loads    float64            // anomalies the server read and checked for a command
	complete bool
}

// scrapeServer reads GET /metrics of the server at base. A failed scrape is
// an incomplete sample, not an error: the breakdown is extra.
func scrapeServer(ctx context.Context, client *http.Client, base string) serverSample {
	s := serverSample{count: map[string]float64{}, sum: map[string]float64{}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return s
	}
	res, err := client.Do(req)
	if err != nil {
		return s
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return s
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, labels, value, ok := parseSample(sc.Text())
		if !ok {
			continue
		}
		switch name {
		case "process_cpu_seconds_total":
			s.cpu, s.complete = value, true
		case "anomalyd_http_request_duration_seconds_count":
			s.count[labels["method"]+" "+labels["route"]] += value
		case "anomalyd_http_request_duration_seconds_sum":
			s.sum[labels["method"]+" "+labels["route"]] += value
		case "anomalyd_command_cache_hits_total":
			s.kept = value
		case "anomalyd_command_anomaly_loads_total":
			s.loads = value
		}
	}
	if sc.Err() != nil {
		s.complete = false
	}
	return s
}

// parseSample splits one line of the Prometheus text format,
// `name{k="v",...} value`, whose label values here never hold a comma or an
// escaped quote.
func parseSample(line string) (name string, labels map[string]string, value float64, ok bool) {
	if line == "" || line[0] == '#' {
		return "", nil, 0, false
	}
	rest := line
	if i := strings.IndexByte(line, '{'); i >= 0 {
		j := strings.LastIndexByte(line, '}')
		if j < i {
			return "", nil, 0, false
		}
		name, rest = line[:i], line[j+1:]
		labels = map[string]string{}
		for _, kv := range strings.Split(line[i+1:j], ",") {
			k, v, found := strings.Cut(kv, "=")
			if found {
				labels[k] = strings.Trim(v, `"`)
			}
		}
	} else {
		var found bool
		if name, rest, found = strings.Cut(line, " "); !found {
			return "", nil, 0, false
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", nil, 0, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	return name, labels, v, err == nil
}

// serverDelta fills in what the server did for route between two samples.
func serverDelta(r *PhaseResult, before, after serverSample, route string) {
	if !before.complete || !after.complete {
		return
	}
	cpu := after.cpu - before.cpu
	r.ServerCPUSeconds = &cpu
	kept, loads := after.kept-before.kept, after.loads-before.loads
	r.ServerKept, r.ServerLoads = &kept, &loads
	if n := after.count[route] - before.count[route]; n > 0 {
		mean := (after.sum[route] - before.sum[route]) / n * 1000
		r.ServerMeanMS = &mean
	}
}
