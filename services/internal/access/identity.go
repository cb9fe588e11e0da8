// Package access authenticates and authorizes the callers of every sparkpods
// gRPC server, in one pair of interceptors built from the table in Rules.
//
// Authentication: a client certificate verified against the services' CA
// during the TLS handshake names the caller by its common name, with its
// organizations as groups (this is how the services know each other); a
// bearer token is checked with a TokenReview against the Kubernetes API
// server (this is how scheduler clients, running as ServiceAccounts, are
// known). A caller with neither is Unauthenticated.
//
// Authorization: trusted callers (the sparkpods services that call this
// one) pass; PodService accepts nobody else. Any other caller needs RBAC
// permission for the method's verb on sparkpods.io/applications in the
// request's namespace, checked with a SubjectAccessReview, so platform
// teams grant access with the Roles they already write. Both reviews are
// cached briefly, as the API server's own webhook authenticator and
// authorizer cache theirs.
package access

import (
	"context"
	"crypto/x509"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Identity is an authenticated caller.
type Identity struct {
	// Name is the user name: a certificate's common name or the user a
	// TokenReview returned (system:serviceaccount:<namespace>:<name>).
	Name string
	// UID is the TokenReview's user UID; empty for certificates.
	UID string
	// Groups are a certificate's organizations or the TokenReview's groups.
	Groups []string
	// Extra is the TokenReview's extra user information.
	Extra map[string][]string
	// Method is how the caller was authenticated: "certificate" or "token".
	Method string
	// Trusted reports whether the caller is one of the server's trusted
	// sparkpods services.
	Trusted bool
}

type identityKey struct{}

// IdentityFrom returns the caller's identity, set by the interceptors for
// every method that is not public.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

func withIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// certificateIdentity is the identity of a client certificate the TLS
// handshake verified, if the caller presented one.
func certificateIdentity(ctx context.Context) (Identity, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return Identity{}, false
	}
	return identityOf(info.State.VerifiedChains[0][0]), true
}

func identityOf(cert *x509.Certificate) Identity {
	return Identity{Name: cert.Subject.CommonName, Groups: cert.Subject.Organization, Method: "certificate"}
}
