// Command anomalyd is the anomalyd server: it records how anomalies of machine
// agents are investigated and resolved, and publishes what agent control must do.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	cfg, err := ParseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "anomalyd: invalid configuration:", err)
		os.Exit(2)
	}
	logger := NewLogger(cfg, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	m := NewMain(cfg, logger)
	if err := m.Open(ctx); err != nil {
		logger.Error("start-up failed", "err", err)
		closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m.Close(closeCtx)
		cancel()
		os.Exit(1)
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "reason", "signal")
	case err := <-m.Failed():
		logger.Error("shutting down", "reason", err)
	}
	stop()
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Close(closeCtx); err != nil {
		logger.Error("shutdown incomplete", "err", err)
		os.Exit(1)
	}
	logger.Info("stopped")
}
