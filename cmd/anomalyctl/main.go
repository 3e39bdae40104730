// Command anomalyctl is the operator's tool for anomalyd: it manages the API
// keys file and the tenants' auto-response policies, verifies the hash chains
// of the event log, and watches the effects that agent control receives.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/anomalyd/anomalyd/auth"
	"github.com/anomalyd/anomalyd/domain"
)

const usage = `usage: anomalyctl <command> [flags]

commands:
  keys create --tenant T --scopes S1,S2 [--name N]   add an API key; prints its secret once
  keys list                                          list the keys (never their secrets)
  keys revoke <key-id>                               revoke a key; the server stops accepting it within a second
  policy set --tenant T [--low C] [--medium C] [--high C] [--critical C]
                                                     set a tenant's auto-response (C: none, throttled, suspended, quarantined)
  policy show                                        print the auto-response policies
  verify [--tenant T [--anomaly ID]]                  recompute every hash chain of the log; exit 1 on a broken one
                                                     (--nats-url of the running anomalyd, --offline-data-dir DIR,
                                                      or --store esdb --esdb-url URL)
  replay [--tenant T] [--anomaly ID] [--agent ID] [--type T] [--since TIME] [--until TIME]
                                                     print the log's events as NDJSON, oldest first
  state --at TIME --tenant T (--anomaly ID | --agent ID)
                                                     an anomaly or an agent as it was at TIME, from the log alone
  rebuild [--api URL --key K --tenant T]             rebuild the read models from the log and compare them with
                                                     what the running service serves (or with a second rebuild)
  effects check [--tenant T] [--effects-stream NAME] compare the effects the log calls for with the effects stream
                                                     (store flags as for verify; effects always come from NATS)
  effects tail [--tenant T] [--all] [-n N]           print agent effects as they are stored (--nats-url, env ANOMALYD_NATS_URL)

Every keys and policy command takes --keys-file (env ANOMALYD_KEYS_FILE; default <data-dir>/keys.json)
and --data-dir (env ANOMALYD_DATA_DIR; default ./data).
`

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	logCommands := map[string]func(context.Context, []string, func(string) string, io.Writer, io.Writer) error{
		"verify": verify, "replay": replay, "state": state, "rebuild": rebuild,
	}
	if len(args) >= 1 && logCommands[args[0]] != nil {
		ctx, stop := signalContext()
		defer stop()
		return exitCode(logCommands[args[0]](ctx, args[1:], getenv, stdout, stderr), stderr)
	}
	if len(args) < 2 || (args[0] != "keys" && args[0] != "effects" && args[0] != "policy") {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] + " " + args[1] {
	case "effects tail", "effects check":
		ctx, stop := signalContext()
		defer stop()
		if args[1] == "tail" {
			err = effectsTail(ctx, args[2:], getenv, stdout, stderr)
		} else {
			err = effectsCheck(ctx, args[2:], getenv, stdout, stderr)
		}
	case "policy set":
		err = policySet(args[2:], getenv, stdout, stderr)
	case "policy show":
		err = policyShow(args[2:], getenv, stdout, stderr)
	case "keys create":
		err = keysCreate(args[2:], getenv, stdout, stderr)
	case "keys list":
		err = keysList(args[2:], getenv, stdout, stderr)
	case "keys revoke":
		err = keysRevoke(args[2:], getenv, stdout, stderr)
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	return exitCode(err, stderr)
}

// exitCode reports err and returns the process's exit code.
func exitCode(err error, stderr io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "anomalyctl:", err)
		return 1
	}
	return 0
}

// keysFlags declares the flags every keys command shares and returns a function
// that gives the keys file's path once the flags are parsed.
func keysFlags(fs *flag.FlagSet, getenv func(string) string) func() string {
	dataDir := fs.String("data-dir", envOr(getenv, "ANOMALYD_DATA_DIR", "./data"), "anomalyd data directory (env ANOMALYD_DATA_DIR)")
	keysFile := fs.String("keys-file", getenv("ANOMALYD_KEYS_FILE"), "API keys file (env ANOMALYD_KEYS_FILE; default <data-dir>/keys.json)")
	return func() string {
		if *keysFile != "" {
			return *keysFile
		}
		return filepath.Join(*dataDir, "keys.json")
	}
}

// parseNoArgs parses flags and refuses positional arguments, so that an
// unquoted "--name my key" is an error rather than a silently shorter name.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q (quote values that contain spaces)", fs.Name(), fs.Arg(0))
	}
	return nil
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}

func keysCreate(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := keysFlags(fs, getenv)
	tenant := fs.String("tenant", "", "tenant the key belongs to (required)")
	name := fs.String("name", "", "a name to recognise the key by")
	scopes := fs.String("scopes", "", "comma-separated scopes (required): "+strings.Join(domain.AllScopes, ","))
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if !domain.ValidTenant(*tenant) {
		return fmt.Errorf("--tenant %q: must match [A-Za-z0-9_-]{1,64}", *tenant)
	}
	sc, err := auth.ParseScopes(*scopes)
	if err != nil {
		return fmt.Errorf("--scopes: %w", err)
	}
	if len(sc) == 0 {
		return errors.New("--scopes: at least one scope is required")
	}
	k, secret, err := auth.CreateKey(path(), *tenant, *name, sc, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "created key %s for tenant %s with scopes %s in %s\n", k.ID, k.Tenant, strings.Join(k.Scopes, ","), path())
	fmt.Fprintln(stderr, "the secret below is shown once; send it as the X-API-Key header")
	fmt.Fprintln(stdout, secret)
	return nil
}

func keysList(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := keysFlags(fs, getenv)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	keys, err := auth.ReadKeys(path())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTENANT\tSCOPES\tCREATED\tREVOKED")
	for _, k := range keys {
		revoked := "-"
		if k.RevokedAt != nil {
			revoked = k.RevokedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Tenant, strings.Join(k.Scopes, ","),
			k.CreatedAt.Format(time.RFC3339), revoked)
	}
	return tw.Flush()
}

func keysRevoke(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys revoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := keysFlags(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("keys revoke takes one key id")
	}
	id := fs.Arg(0)
	// Flags may follow the id too: parse what comes after it.
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("keys revoke takes one key id, got also %q", fs.Arg(0))
	}
	k, err := auth.RevokeKey(path(), id, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked %s (tenant %s) at %s\n", k.ID, k.Tenant, k.RevokedAt.Format(time.RFC3339))
	return nil
}
