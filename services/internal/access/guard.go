package access

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"k8s.io/utils/clock"
)

// Config describes a Guard. Service and Rules are required.
type Config struct {
	// Service names the server in logs, for example "podmanager".
	Service string
	// Rules maps full method names to their rule; use the package's Rules.
	Rules map[string]Rule
	// Trusted are the identities (certificate common names or ServiceAccount
	// user names) of the sparkpods services allowed to call this server
	// without an RBAC check, and the only ones allowed TrustedOnly methods.
	Trusted []string
	// Tokens checks bearer tokens; nil refuses them (certificates only).
	Tokens TokenReviewer
	// TokenAudiences are passed to TokenReview; empty means the API
	// server's own audience.
	TokenAudiences []string
	// Access checks RBAC; nil refuses every caller that is not trusted.
	Access PermissionReviewer
	// Registry receives the denial counter; nil registers nothing.
	Registry prometheus.Registerer
	// Logger receives one line per denial; nil uses slog.Default().
	Logger *slog.Logger
	// Clock ages the review caches; nil is the real clock.
	Clock clock.Clock
}

// Guard authenticates and authorizes every call through its interceptors.
type Guard struct {
	service string
	rules   map[string]Rule
	trusted []string
	tokens  *tokenCache
	access  *accessCache
	logger  *slog.Logger
	denied  *prometheus.CounterVec
}

// New builds a Guard from cfg.
func New(cfg Config) (*Guard, error) {
	if cfg.Service == "" || cfg.Rules == nil {
		return nil, errors.New("access: Service and Rules are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	g := &Guard{
		service: cfg.Service,
		rules:   cfg.Rules,
		trusted: slices.Clone(cfg.Trusted),
		logger:  cfg.Logger.With("component", "access"),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sparkpods_access_denied_total",
			Help: "Calls refused by authentication (code Unauthenticated) or authorization (code PermissionDenied), by method.",
		}, []string{"grpc_method", "grpc_code"}),
	}
	if cfg.Tokens != nil {
		g.tokens = newTokenCache(cfg.Tokens, cfg.TokenAudiences, cfg.Clock)
	}
	if cfg.Access != nil {
		g.access = newAccessCache(cfg.Access, cfg.Clock)
	}
	if cfg.Registry != nil {
		if err := cfg.Registry.Register(g.denied); err != nil {
			return nil, fmt.Errorf("access: register metrics: %w", err)
		}
	}
	return g, nil
}

// UnaryInterceptor checks each unary call before its handler runs.
func (g *Guard) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := g.authorize(ctx, info.FullMethod, req)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor checks each stream. Authentication happens before the
// handler runs; a method checked per namespace is authorized when the
// handler reads the request (the first message), since the namespace is in
// it. A refusal is then the error the handler's RecvMsg returns.
func (g *Guard) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		rule, ok := g.rules[info.FullMethod]
		if ok && rule.Verb != "" {
			ctx, id, err := g.authenticate(ss.Context(), info.FullMethod)
			if err != nil {
				return err
			}
			return handler(srv, &checkedStream{ServerStream: ss, ctx: ctx, guard: g, method: info.FullMethod, identity: id})
		}
		ctx, err := g.authorize(ss.Context(), info.FullMethod, nil)
		if err != nil {
			return err
		}
		return handler(srv, &checkedStream{ServerStream: ss, ctx: ctx, checked: true})
	}
}

// checkedStream carries the caller's identity in its context and, until
// the first message is read, holds the authorization check. A refusal
// sticks: every later RecvMsg and SendMsg returns it too, so a handler
// that reads again after an error never gets past the check.
type checkedStream struct {
	grpc.ServerStream
	ctx      context.Context
	guard    *Guard
	method   string
	identity Identity
	checked  bool
	denied   error
}

func (s *checkedStream) Context() context.Context { return s.ctx }

func (s *checkedStream) RecvMsg(m any) error {
	if s.denied != nil {
		return s.denied
	}
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if s.checked {
		return nil
	}
	s.checked = true
	s.denied = s.guard.check(s.ctx, s.method, s.identity, m)
	return s.denied
}

func (s *checkedStream) SendMsg(m any) error {
	if s.denied != nil {
		return s.denied
	}
	return s.ServerStream.SendMsg(m)
}

// authorize authenticates the caller and checks the method's rule against
// the request (nil for streams whose rule needs no request).
func (g *Guard) authorize(ctx context.Context, method string, req any) (context.Context, error) {
	rule, ok := g.rules[method]
	if ok && rule.Public {
		return ctx, nil
	}
	if !ok {
		return ctx, g.deny(ctx, method, Identity{}, codes.PermissionDenied, "method %s has no access rule and is refused", method)
	}
	ctx, id, err := g.authenticate(ctx, method)
	if err != nil {
		return ctx, err
	}
	return ctx, g.check(ctx, method, id, req)
}

// authenticate establishes the caller's identity: a verified client
// certificate first, then a bearer token.
func (g *Guard) authenticate(ctx context.Context, method string) (context.Context, Identity, error) {
	if id, ok := certificateIdentity(ctx); ok {
		id.Trusted = slices.Contains(g.trusted, id.Name)
		return withIdentity(ctx, id), id, nil
	}
	token, found := bearerToken(ctx)
	if !found {
		return ctx, Identity{}, g.deny(ctx, method, Identity{}, codes.Unauthenticated,
			"no credentials: present a client certificate signed by the sparkpods CA, or a Kubernetes ServiceAccount token as \"authorization: Bearer <token>\"")
	}
	if g.tokens == nil {
		return ctx, Identity{}, g.deny(ctx, method, Identity{}, codes.Unauthenticated,
			"this server accepts client certificates only, not bearer tokens")
	}
	res, err := g.tokens.review(ctx, token)
	if err != nil {
		g.logger.Warn("TokenReview failed", "method", method, "err", err)
		return ctx, Identity{}, status.Error(codes.Unavailable, "cannot check the bearer token with the Kubernetes API server (TokenReview failed); retry")
	}
	if !res.authenticated {
		msg := "the bearer token was rejected by the Kubernetes API server's TokenReview"
		if res.reason != "" {
			msg += ": " + res.reason
		}
		return ctx, Identity{}, g.deny(ctx, method, Identity{}, codes.Unauthenticated, "%s", msg)
	}
	id := res.identity
	id.Trusted = slices.Contains(g.trusted, id.Name)
	return withIdentity(ctx, id), id, nil
}

// check applies the method's rule to an authenticated caller.
func (g *Guard) check(ctx context.Context, method string, id Identity, req any) error {
	rule := g.rules[method]
	trusted := id.Trusted
	switch {
	case rule.Authenticated, trusted && !rule.TrustedOnly:
		return nil
	case rule.TrustedOnly:
		if trusted {
			return nil
		}
		return g.deny(ctx, method, id, codes.PermissionDenied,
			"%s is refused: %s accepts only the sparkpods services %s", who(id), method, strings.Join(g.trusted, ", "))
	}
	r := requestOf(rule.Verb, req)
	if g.access == nil {
		return g.deny(ctx, method, id, codes.PermissionDenied, "%s is refused: this server accepts only the sparkpods services %s", who(id), strings.Join(g.trusted, ", "))
	}
	res, err := g.access.review(ctx, id, r)
	if err != nil {
		g.logger.Warn("SubjectAccessReview failed", "method", method, "user", id.Name, "err", err)
		return status.Error(codes.Unavailable, "cannot check permissions with the Kubernetes API server (SubjectAccessReview failed); retry")
	}
	if res.allowed {
		return nil
	}
	msg := fmt.Sprintf("%s may not %s %s/%s", who(id), r.verb, APIGroup, Resource)
	if r.name != "" {
		msg += fmt.Sprintf(" %q", r.name)
	}
	if r.namespace != "" {
		msg += fmt.Sprintf(" in namespace %q", r.namespace)
	} else {
		msg += " in every namespace (the request names no namespace)"
	}
	if res.reason != "" {
		msg += " (" + res.reason + ")"
	}
	return g.deny(ctx, method, id, codes.PermissionDenied, "%s", msg)
}

func (g *Guard) deny(ctx context.Context, method string, id Identity, code codes.Code, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	g.denied.WithLabelValues(method, code.String()).Inc()
	attrs := []any{"service", g.service, "method", method, "code", code.String(), "reason", msg}
	if id.Name != "" {
		attrs = append(attrs, "user", id.Name, "via", id.Method)
	}
	g.logger.WarnContext(ctx, "call refused", attrs...)
	return status.Error(code, msg)
}

func who(id Identity) string { return fmt.Sprintf("user %q", id.Name) }

func bearerToken(ctx context.Context) (string, bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		scheme, token, ok := strings.Cut(v, " ")
		if ok && strings.EqualFold(scheme, "bearer") && strings.TrimSpace(token) != "" {
			return strings.TrimSpace(token), true
		}
	}
	return "", false
}

// requestOf reads the namespace and application id a request names. Every
// sparkpods request that acts on applications has a string field
// "namespace" and, when it names one application, "app_id"; reading them by
// name keeps the rule table the only per-method knowledge here.
func requestOf(verb string, req any) request {
	r := request{verb: verb}
	msg, ok := req.(proto.Message)
	if !ok {
		return r
	}
	m := msg.ProtoReflect()
	fields := m.Descriptor().Fields()
	if f := fields.ByName("namespace"); f != nil && f.Kind() == protoreflect.StringKind {
		r.namespace = m.Get(f).String()
	}
	if f := fields.ByName("app_id"); f != nil && f.Kind() == protoreflect.StringKind {
		r.name = m.Get(f).String()
	}
	return r
}
