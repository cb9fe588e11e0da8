package transport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// tokenRereadInterval is how long a token read from a file is used before
// the file is read again. Kubernetes rotates projected ServiceAccount tokens
// long before they expire, so a minute is plenty.
const tokenRereadInterval = time.Minute

// BearerToken sends a Kubernetes ServiceAccount token (or any token the
// API server's TokenReview accepts) as "authorization: Bearer <token>" on
// every call. It requires a TLS connection: a token must never travel in
// plaintext.
type BearerToken struct {
	// File holds the token, for example a projected ServiceAccount token at
	// /var/run/secrets/kubernetes.io/serviceaccount/token; it is re-read every
	// minute so a rotated token is picked up.
	File string
	// Token is a fixed token, used when File is empty.
	Token string

	mu     sync.Mutex
	cached string
	read   time.Time
}

var _ credentials.PerRPCCredentials = (*BearerToken)(nil)

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b *BearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	token, err := b.token()
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (b *BearerToken) RequireTransportSecurity() bool { return true }

func (b *BearerToken) token() (string, error) {
	if b.File == "" {
		if b.Token == "" {
			return "", errors.New("transport: bearer token is empty")
		}
		return b.Token, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cached != "" && time.Since(b.read) < tokenRereadInterval {
		return b.cached, nil
	}
	data, err := os.ReadFile(b.File)
	if err != nil {
		return "", fmt.Errorf("transport: token file: %w", err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("transport: token file %s is empty", b.File)
	}
	b.cached, b.read = token, time.Now()
	return token, nil
}
