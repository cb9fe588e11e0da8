package grpcserver

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Flags are the command-line flags every sparkpods service shares for its
// servers and logs.
type Flags struct {
	// Listen is --listen, the gRPC address.
	Listen string
	// MetricsListen is --metrics-listen, the /metrics and pprof address.
	MetricsListen string
	// LogLevel is --log-level: debug, info, warn or error.
	LogLevel string
	// LogFormat is --log-format: text or json.
	LogFormat string
}

// Bind registers the flags on fs with the service's default ports.
func (f *Flags) Bind(fs *flag.FlagSet, defaultListen, defaultMetricsListen string) {
	fs.StringVar(&f.Listen, "listen", defaultListen, "gRPC listen address, host:port")
	fs.StringVar(&f.MetricsListen, "metrics-listen", defaultMetricsListen, "Prometheus /metrics and /debug/pprof listen address, host:port; empty disables it")
	fs.StringVar(&f.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.LogFormat, "log-format", "text", "log format: text or json")
}

// Logger builds the structured logger the flags describe, writing to stderr.
func (f *Flags) Logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(f.LogFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", f.LogFormat)
	}
}
