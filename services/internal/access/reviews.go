package access

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/utils/clock"
)

// TokenReviewer is the part of the Kubernetes client that checks tokens
// (kubernetes.Interface.AuthenticationV1().TokenReviews()).
type TokenReviewer interface {
	Create(ctx context.Context, review *authenticationv1.TokenReview, opts metav1.CreateOptions) (*authenticationv1.TokenReview, error)
}

// PermissionReviewer is the part of the Kubernetes client that checks RBAC
// (kubernetes.Interface.AuthorizationV1().SubjectAccessReviews()).
type PermissionReviewer interface {
	Create(ctx context.Context, review *authorizationv1.SubjectAccessReview, opts metav1.CreateOptions) (*authorizationv1.SubjectAccessReview, error)
}

// Cache lifetimes follow the API server's webhook defaults in spirit:
// answers are reused briefly, refusals for less time than grants so that a
// newly granted permission shows quickly.
const (
	tokenAcceptedTTL = 2 * time.Minute
	tokenRejectedTTL = 10 * time.Second
	accessAllowedTTL = time.Minute
	accessDeniedTTL  = 10 * time.Second
	reviewCacheSize  = 4096
)

type tokenResult struct {
	identity      Identity
	authenticated bool
	reason        string
}

// tokenCache checks bearer tokens with TokenReview and remembers the
// answers, keyed by the token's hash so no token is kept in memory.
type tokenCache struct {
	reviewer  TokenReviewer
	audiences []string
	cache     *cache.LRUExpireCache
}

func newTokenCache(reviewer TokenReviewer, audiences []string, clk clock.Clock) *tokenCache {
	return &tokenCache{reviewer: reviewer, audiences: audiences, cache: cache.NewLRUExpireCacheWithClock(reviewCacheSize, clk)}
}

func (c *tokenCache) review(ctx context.Context, token string) (tokenResult, error) {
	sum := sha256.Sum256([]byte(token))
	key := hex.EncodeToString(sum[:])
	if v, ok := c.cache.Get(key); ok {
		return v.(tokenResult), nil
	}
	resp, err := c.reviewer.Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: c.audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return tokenResult{}, err
	}
	res := tokenResult{authenticated: resp.Status.Authenticated, reason: resp.Status.Error}
	ttl := tokenRejectedTTL
	if res.authenticated {
		u := resp.Status.User
		res.identity = Identity{Name: u.Username, UID: u.UID, Groups: u.Groups, Method: "token"}
		if len(u.Extra) > 0 {
			res.identity.Extra = make(map[string][]string, len(u.Extra))
			for k, v := range u.Extra {
				res.identity.Extra[k] = v
			}
		}
		ttl = tokenAcceptedTTL
	}
	c.cache.Add(key, res, ttl)
	return res, nil
}

// request is what one call asks to do, in RBAC terms.
type request struct {
	verb      string
	namespace string
	name      string
}

type accessResult struct {
	allowed bool
	reason  string
}

// accessCache checks RBAC with SubjectAccessReview and remembers answers.
type accessCache struct {
	reviewer PermissionReviewer
	cache    *cache.LRUExpireCache
}

func newAccessCache(reviewer PermissionReviewer, clk clock.Clock) *accessCache {
	return &accessCache{reviewer: reviewer, cache: cache.NewLRUExpireCacheWithClock(reviewCacheSize, clk)}
}

func (c *accessCache) review(ctx context.Context, id Identity, req request) (accessResult, error) {
	groups := slices.Clone(id.Groups)
	slices.Sort(groups)
	// The extra user information is sent to the authorizer, which may
	// decide on it (a webhook may), so it is part of the key too.
	extraKeys := make([]string, 0, len(id.Extra))
	for k, v := range id.Extra {
		extraKeys = append(extraKeys, k+"="+strings.Join(v, ","))
	}
	slices.Sort(extraKeys)
	key := strings.Join([]string{id.Name, id.UID, strings.Join(groups, ","), strings.Join(extraKeys, ";"), req.verb, req.namespace, req.name}, "\x00")
	if v, ok := c.cache.Get(key); ok {
		return v.(accessResult), nil
	}
	extra := make(map[string]authorizationv1.ExtraValue, len(id.Extra))
	for k, v := range id.Extra {
		extra[k] = v
	}
	resp, err := c.reviewer.Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: id.Name, UID: id.UID, Groups: id.Groups, Extra: extra,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Group: APIGroup, Resource: Resource, Verb: req.verb, Namespace: req.namespace, Name: req.name,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return accessResult{}, err
	}
	res := accessResult{allowed: resp.Status.Allowed && !resp.Status.Denied, reason: resp.Status.Reason}
	ttl := accessDeniedTTL
	if res.allowed {
		ttl = accessAllowedTTL
	}
	c.cache.Add(key, res, ttl)
	return res, nil
}
