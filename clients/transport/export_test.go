package transport

import (
	"crypto/tls"
	"time"

	"google.golang.org/grpc/credentials"
)

// ServerConfigWithClock is ServerConfig with the reloader reading the time
// from now, so tests move past the recheck interval without sleeping.
func ServerConfigWithClock(f Files, now func() time.Time) (*tls.Config, error) {
	r, err := newReloader(f, true, now)
	if err != nil {
		return nil, err
	}
	return r.serverConfig(), nil
}

// ClientCredentialsWithClock is ClientCredentials with the reloader reading
// the time from now.
func ClientCredentialsWithClock(f Files, serverName string, now func() time.Time) (credentials.TransportCredentials, error) {
	r, err := newReloader(f, false, now)
	if err != nil {
		return nil, err
	}
	return &reloadingCredentials{files: r, serverName: serverName}, nil
}

// RecheckInterval is how often the reloader looks at the files.
const RecheckInterval = recheckInterval
