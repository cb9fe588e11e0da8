package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/sparkpods/sparkpods/clients/transport"
	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// Keepalive suited to long-lived event streams: the services' enforcement
// policy refuses pings more often than every 10 seconds.
var defaultKeepalive = keepalive.ClientParameters{
	Time:    20 * time.Second,
	Timeout: 10 * time.Second,
}

// Option configures a Client.
type Option func(*options)

type options struct {
	callTimeout    time.Duration
	maxAttempts    int
	backoffInitial time.Duration
	backoffMax     time.Duration
	heartbeat      time.Duration
	ackInterval    time.Duration
	logger         *slog.Logger
	transport      *transport.ClientOptions
	dialOptions    []grpc.DialOption
}

// WithCallTimeout bounds each attempt of a unary call; default 30s.
func WithCallTimeout(d time.Duration) Option {
	return func(o *options) { o.callTimeout = d }
}

// WithMaxAttempts sets how many times a unary call is tried when the service
// answers Unavailable, the first try included; default 5. 1 disables
// retries.
func WithMaxAttempts(n int) Option {
	return func(o *options) { o.maxAttempts = n }
}

// WithBackoff sets the delay between retries of unary calls and between
// reconnects of event streams: the n-th consecutive failure waits a random
// time up to min(max, initial·2ⁿ) ("full jitter"). Defaults: 100ms and 10s.
func WithBackoff(initial, max time.Duration) Option {
	return func(o *options) { o.backoffInitial, o.backoffMax = initial, max }
}

// WithHeartbeatInterval sets how often the lifecycle service sends a
// heartbeat on a quiet event stream; default 10s, at least 100ms. A stream
// silent for three intervals is replaced.
func WithHeartbeatInterval(d time.Duration) Option {
	return func(o *options) { o.heartbeat = d }
}

// WithAcknowledgeInterval makes Events acknowledge the events its caller has
// finished with, at most once per d (on the next event or heartbeat after d
// has passed). Zero, the default, never acknowledges: the caller does it
// with Application.Acknowledge, typically after persisting its position.
func WithAcknowledgeInterval(d time.Duration) Option {
	return func(o *options) { o.ackInterval = d }
}

// WithLogger logs retries and reconnects; the default discards logs.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithTransport says how Dial reaches the services: TLS verified with a CA
// bundle, a client certificate and/or a ServiceAccount token, all read from
// files that are re-read when they change (see transport.ClientOptions);
// or, with Insecure, plaintext for services run with --insecure. New
// ignores it.
func WithTransport(t transport.ClientOptions) Option {
	return func(o *options) { o.transport = &t }
}

// WithDialOptions adds options to the connections Dial makes, after its
// own (WithTransport's credentials and keepalive), so they can replace
// them. Transport credentials given here (grpc.WithTransportCredentials)
// stand in for WithTransport. New ignores them.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOptions = append(o.dialOptions, opts...) }
}

// Client calls the allocator's SchedulerService and the lifecycle service's
// LifecycleService. It is safe for concurrent use.
type Client struct {
	opts      options
	scheduler sparkpodsv1.SchedulerServiceClient
	lifecycle sparkpodsv1.LifecycleServiceClient
	owned     []*grpc.ClientConn
}

// Dial connects to the allocator and the lifecycle service at the given gRPC
// targets (for example "sparkpods-allocator.sparkpods:50052"), with the
// credentials of WithTransport (or of WithDialOptions): there is no
// default, since the services refuse plaintext unless they run with
// --insecure. Connections are made lazily; Close releases them.
func Dial(allocator, lifecycle string, opts ...Option) (*Client, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	if allocator == "" || lifecycle == "" {
		return nil, errors.New("scheduler: the allocator and lifecycle addresses are required")
	}
	var dialOpts []grpc.DialOption
	if o.transport != nil {
		if dialOpts, err = o.transport.DialOptions(); err != nil {
			return nil, fmt.Errorf("scheduler: transport: %w", err)
		}
	}
	dialOpts = append(append(dialOpts, grpc.WithKeepaliveParams(defaultKeepalive)), o.dialOptions...)
	var conns []*grpc.ClientConn
	for _, target := range []string{allocator, lifecycle} {
		conn, err := grpc.NewClient(target, dialOpts...)
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			if o.transport == nil {
				return nil, fmt.Errorf("scheduler: dial %s: %w (choose the transport with WithTransport: TLS with a CA file, or Insecure for services run with --insecure)", target, err)
			}
			return nil, fmt.Errorf("scheduler: dial %s: %w", target, err)
		}
		conns = append(conns, conn)
	}
	c := newClient(o, conns[0], conns[1])
	c.owned = conns
	return c, nil
}

// New returns a Client over connections the caller made and closes. Its
// connections should carry keepalive parameters no more aggressive than one
// ping per 10 seconds.
func New(allocator, lifecycle grpc.ClientConnInterface, opts ...Option) (*Client, error) {
	if allocator == nil || lifecycle == nil {
		return nil, errors.New("scheduler: the allocator and lifecycle connections are required")
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	return newClient(o, allocator, lifecycle), nil
}

func newOptions(opts []Option) (options, error) {
	o := options{
		callTimeout:    30 * time.Second,
		maxAttempts:    5,
		backoffInitial: 100 * time.Millisecond,
		backoffMax:     10 * time.Second,
		heartbeat:      10 * time.Second,
		logger:         slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.callTimeout <= 0:
		return o, errors.New("scheduler: the call timeout must be positive")
	case o.maxAttempts < 1:
		return o, errors.New("scheduler: at least one attempt is needed")
	case o.backoffInitial <= 0 || o.backoffMax < o.backoffInitial:
		return o, errors.New("scheduler: backoff needs 0 < initial <= max")
	case o.heartbeat < 100*time.Millisecond || o.heartbeat > 10*time.Minute:
		return o, errors.New("scheduler: the heartbeat interval must be between 100ms and 10m")
	case o.ackInterval < 0:
		return o, errors.New("scheduler: the acknowledge interval must not be negative")
	case o.logger == nil:
		return o, errors.New("scheduler: the logger must not be nil")
	}
	return o, nil
}

func newClient(o options, allocator, lifecycle grpc.ClientConnInterface) *Client {
	return &Client{
		opts:      o,
		scheduler: sparkpodsv1.NewSchedulerServiceClient(allocator),
		lifecycle: sparkpodsv1.NewLifecycleServiceClient(lifecycle),
	}
}

// Close closes the connections Dial made; for a Client from New it does
// nothing.
func (c *Client) Close() error {
	var errs []error
	for _, conn := range c.owned {
		errs = append(errs, conn.Close())
	}
	return errors.Join(errs...)
}

// SchedulerService returns the generated stub, for calls this package does
// not wrap (IsExecutorDeleted). It has no retries or timeouts of its own.
func (c *Client) SchedulerService() sparkpodsv1.SchedulerServiceClient { return c.scheduler }

// LifecycleService returns the generated stub (ListExecutorEvents).
func (c *Client) LifecycleService() sparkpodsv1.LifecycleServiceClient { return c.lifecycle }

// call runs one idempotent unary call: each attempt under the call timeout,
// retried on Unavailable only, with backoff. It returns the last attempt's
// error, or ctx's when ctx ends first.
func (c *Client) call(ctx context.Context, what string, attempt func(context.Context) error) error {
	for n := 0; ; n++ {
		callCtx, cancel := context.WithTimeout(ctx, c.opts.callTimeout)
		err := attempt(callCtx)
		cancel()
		if err == nil {
			return nil
		}
		if status.Code(err) != codes.Unavailable || n+1 >= c.opts.maxAttempts || ctx.Err() != nil {
			return fmt.Errorf("scheduler: %s: %w", what, err)
		}
		delay := c.backoff(n)
		c.opts.logger.WarnContext(ctx, "call failed; retrying", "call", what, "err", err, "in", delay, "attempt", n+1)
		if werr := wait(ctx, delay); werr != nil {
			return fmt.Errorf("scheduler: %s: %w (after %d attempts, the last: %w)", what, werr, n+1, err)
		}
	}
}

// backoff is "full jitter": a random delay up to the capped exponential for
// the given number of consecutive failures.
func (c *Client) backoff(failures int) time.Duration {
	ceiling := c.opts.backoffMax
	if failures < 30 {
		ceiling = min(c.opts.backoffMax, c.opts.backoffInitial<<failures)
	}
	return time.Duration(rand.Int64N(int64(ceiling)) + 1)
}

// wait waits for d, or returns ctx's error when it ends first.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
