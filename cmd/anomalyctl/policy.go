package main

import (
	"flag"
	"fmt"
	"io"
	"sort"

	"github.com/anomalyd/anomalyd/auth"
	"github.com/anomalyd/anomalyd/domain"
)

// policySet changes a tenant's auto-response policy in the keys file; the
// running server records the change in the tenant's log within seconds.
func policySet(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy set", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := keysFlags(fs, getenv)
	tenant := fs.String("tenant", "", "tenant whose policy to set (required)")
	sevs := []domain.Severity{domain.SeverityLow, domain.SeverityMedium, domain.SeverityHigh, domain.SeverityCritical}
	vals := map[domain.Severity]*string{}
	for _, s := range sevs {
		vals[s] = fs.String(string(s), "", "auto-response for "+string(s)+" anomalies: none, throttled, suspended or quarantined")
	}
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if !domain.ValidTenant(*tenant) {
		return fmt.Errorf("--tenant %q: must match [A-Za-z0-9_-]{1,64}", *tenant)
	}
	f, err := auth.ReadFile(path())
	if err != nil {
		return err
	}
	current, err := f.TenantPolicies()
	if err != nil {
		return err
	}
	m := map[string]string{}
	for s, c := range current[*tenant].Complete() {
		m[string(s)] = c.String()
	}
	for _, s := range sevs {
		if *vals[s] != "" {
			m[string(s)] = *vals[s]
		}
	}
	p, err := domain.ParsePolicy(m)
	if err != nil {
		return fmt.Errorf("--%s", domain.ErrorMessage(err))
	}
	if err := auth.SetPolicy(path(), *tenant, p); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s\n", *tenant, p)
	return nil
}

// policyShow prints the policies the keys file configures.
func policyShow(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := keysFlags(fs, getenv)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	f, err := auth.ReadFile(path())
	if err != nil {
		return err
	}
	ps, err := f.TenantPolicies()
	if err != nil {
		return err
	}
	tenants := make([]string, 0, len(ps))
	for t := range ps {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	fmt.Fprintf(stdout, "default: %s\n", domain.DefaultPolicy())
	for _, t := range tenants {
		fmt.Fprintf(stdout, "%s: %s\n", t, ps[t])
	}
	return nil
}
