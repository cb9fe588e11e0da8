package grpcserver

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// fakeStream is a grpc.ServerStream with only a context.
type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *fakeStream) Context() context.Context { return s.ctx }

func fromAddr(addr string) context.Context {
	tcp := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr))
	return peer.NewContext(context.Background(), &peer.Peer{Addr: tcp})
}

// heldStream is a stream the limiter let through, whose handler runs until
// it is closed.
type heldStream struct {
	release chan struct{}
	done    chan error
}

// open runs the limiter's interceptor for a stream from ctx: it returns
// once the handler runs (the stream is open), or with the refusal.
func open(ctx context.Context, l *streamLimiter, handlerErr error) (*heldStream, error) {
	h := &heldStream{release: make(chan struct{}), done: make(chan error, 1)}
	started := make(chan struct{})
	info := &grpc.StreamServerInfo{FullMethod: "/sparkpods.v1.SnapshotService/WatchSnapshots", IsServerStream: true}
	go func() {
		h.done <- l.interceptor()(nil, &fakeStream{ctx: ctx}, info, func(any, grpc.ServerStream) error {
			close(started)
			<-h.release
			return handlerErr
		})
	}()
	select {
	case <-started:
		return h, nil
	case err := <-h.done:
		return nil, err
	}
}

// close ends the handler and waits for the interceptor to return, which is
// when the limiter has released the stream.
func (h *heldStream) close() error {
	close(h.release)
	return <-h.done
}

func TestStreamLimiter(t *testing.T) {
	a1, a2, b := fromAddr("10.0.0.1:4000"), fromAddr("10.0.0.1:4001"), fromAddr("10.0.0.2:4000")
	l := newStreamLimiter(2)

	first, err := open(a1, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Another connection from the same address is the same client.
	second, err := open(a2, l, status.Error(codes.Canceled, "client went away"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = open(a1, l, nil)
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "client 10.0.0.1 already has 2 streams open") {
		t.Fatalf("third stream of one client: %v, want ResourceExhausted naming the client and the limit", err)
	}
	other, err := open(b, l, nil)
	if err != nil {
		t.Fatalf("another client is refused: %v", err)
	}

	// A stream is freed when its handler ends, with an error too.
	if err := second.close(); status.Code(err) != codes.Canceled {
		t.Fatalf("handler error %v not passed through", err)
	}
	third, err := open(a1, l, nil)
	if err != nil {
		t.Fatalf("after a stream closed: %v", err)
	}
	for _, h := range []*heldStream{first, third, other} {
		if err := h.close(); err != nil {
			t.Fatal(err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.open) != 0 {
		t.Fatalf("limiter still counts %v after every stream closed", l.open)
	}
}

func TestClientKey(t *testing.T) {
	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{name: "IPv4 peer", ctx: fromAddr("10.0.0.1:4000"), want: "client 10.0.0.1"},
		{name: "IPv6 peer", ctx: fromAddr("[::1]:4000"), want: "client ::1"},
		{name: "no peer", ctx: context.Background(), want: "client unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clientKey(tt.ctx); got != tt.want {
				t.Fatalf("clientKey = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUnaryDeadline(t *testing.T) {
	const maxDuration = time.Minute
	tests := []struct {
		name string
		// client is the deadline the caller set; zero means none.
		client time.Duration
		// wantMax says the handler must see now+maxDuration, not the
		// caller's deadline.
		wantMax bool
	}{
		{name: "no deadline", wantMax: true},
		{name: "longer deadline", client: time.Hour, wantMax: true},
		{name: "shorter deadline", client: time.Second},
		{name: "just under the max", client: maxDuration - time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			var clientDeadline time.Time
			if tt.client != 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.client)
				defer cancel()
				clientDeadline, _ = ctx.Deadline()
			}
			before := time.Now()
			var got time.Time
			var ok bool
			_, err := unaryDeadline(maxDuration)(ctx, nil, &grpc.UnaryServerInfo{}, func(ctx context.Context, _ any) (any, error) {
				got, ok = ctx.Deadline()
				return nil, nil
			})
			after := time.Now()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				t.Fatal("handler has no deadline")
			}
			if !tt.wantMax {
				if !got.Equal(clientDeadline) {
					t.Fatalf("deadline %v, want the caller's %v", got, clientDeadline)
				}
				return
			}
			if got.Before(before.Add(maxDuration)) || got.After(after.Add(maxDuration)) {
				t.Fatalf("deadline %v, want %v from the call", got, maxDuration)
			}
		})
	}
}
