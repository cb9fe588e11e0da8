package grpcserver

import (
	"context"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/sparkpods/sparkpods/services/internal/access"
)

// unaryDeadline bounds every unary call: a call without a deadline, or with
// a longer one, gets max. A stuck Kubernetes request then ends as
// DeadlineExceeded instead of holding a handler forever.
func unaryDeadline(maxDuration time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if d, ok := ctx.Deadline(); !ok || time.Until(d) > maxDuration {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, maxDuration)
			defer cancel()
		}
		return handler(ctx, req)
	}
}

// streamLimiter bounds the streams one client holds open at once, so one
// misbehaving client (many watches, none read) cannot take the server's
// memory or goroutines from the others. A client is its authenticated
// identity, or its IP address when the server runs without authentication.
type streamLimiter struct {
	max  int
	mu   sync.Mutex
	open map[string]int
}

func newStreamLimiter(maxPerClient int) *streamLimiter {
	return &streamLimiter{max: maxPerClient, open: make(map[string]int)}
}

func (l *streamLimiter) interceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		client := clientKey(ss.Context())
		if !l.acquire(client) {
			return status.Errorf(codes.ResourceExhausted,
				"%s already has %d streams open, the most one client may hold; close some before opening more", client, l.max)
		}
		defer l.release(client)
		return handler(srv, ss)
	}
}

func (l *streamLimiter) acquire(client string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[client] >= l.max {
		return false
	}
	l.open[client]++
	return true
}

func (l *streamLimiter) release(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[client]--; l.open[client] <= 0 {
		delete(l.open, client)
	}
}

func clientKey(ctx context.Context) string {
	if id, ok := access.IdentityFrom(ctx); ok {
		return "user " + id.Name
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		host, _, err := net.SplitHostPort(p.Addr.String())
		if err == nil {
			return "client " + host
		}
		return "client " + p.Addr.String()
	}
	return "client unknown"
}
