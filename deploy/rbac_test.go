package deploy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sync/errgroup"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
)

// grant is one permission a service needs: verbs on a resource ("pods", "pods/log") of an API
// group, in every namespace (clusterWide) or only in the services' own namespace.
type grant struct {
	group, resource string
	verbs           []string
	clusterWide     bool
}

// needs is exactly what each service calls, read from its code (the client-go calls under
// services/<name>/internal): anything more is a finding, anything less fails the services.
var needs = map[string][]grant{
	// source.go: one list+watch of pods in all namespaces (or a namespace set).
	"snapshot": {{"", "pods", []string{"get", "list", "watch"}, true}},
	// kubepods.go: create, get, list, delete and patch executor pods; get the driver pod.
	"podmanager": {{"", "pods", []string{"get", "list", "create", "patch", "delete"}, true}},
	// manager.go gets the driver pod; store.go keeps one ConfigMap per application in the
	// application's namespace; leader.go holds a Lease in its own namespace.
	"allocator": {
		{"", "pods", []string{"get"}, true},
		{"", "configmaps", []string{"get", "list", "create", "update", "delete"}, true},
		{"coordination.k8s.io", "leases", []string{"get", "create", "update"}, false},
	},
	// eventstore/configmaps.go keeps events in ConfigMaps beside the application; adapters.go
	// gets the driver pod to own them.
	"lifecycle": {
		{"", "pods", []string{"get"}, true},
		{"", "configmaps", []string{"list", "create", "update", "delete"}, true},
	},
}

// otherNamespace stands for any namespace Spark applications run in.
const otherNamespace = "spark-apps"

// access is one question to the authorizer.
type access struct {
	gr        schema.GroupResource // Resource may be "pods/log"
	verb      string
	namespace string // "" for cluster-scoped resources, or all namespaces
}

func (a access) String() string {
	ns := a.namespace
	if ns == "" {
		ns = "*"
	}
	return fmt.Sprintf("%s %s in %s", a.verb, a.gr, ns)
}

// TestRBAC asks the API server, with a SubjectAccessReview, whether each service's
// ServiceAccount may do each verb on every resource the server has (subresources included),
// in the services' namespace, in another namespace and across all namespaces. The answer
// must be yes exactly for what the service needs (the needs table) plus what every
// authenticated ServiceAccount may do anyway (asked for an unbound ServiceAccount).
func TestRBAC(t *testing.T) {
	applied(t)
	questions := everyQuestion(t, namespace, otherNamespace)
	t.Logf("%d questions per ServiceAccount", len(questions))

	baseline := allowedTo(t, "sparkpods-nobody", questions)
	for name, grants := range needs {
		t.Run(name, func(t *testing.T) {
			allowed := allowedTo(t, "sparkpods-"+name, questions)
			for _, q := range questions {
				want := baseline[q] || granted(grants, q)
				if allowed[q] != want {
					t.Errorf("%s may %s: %v, want %v", name, q, allowed[q], want)
				}
			}
			// The table must not grant what the server does not even have.
			for _, g := range grants {
				for _, v := range g.verbs {
					q := access{schema.GroupResource{Group: g.group, Resource: g.resource}, v, namespace}
					if !slices.Contains(questions, q) {
						t.Errorf("needs table: the API server has no %s", q)
					}
				}
			}
		})
	}
}

// everyQuestion is every verb on every resource the API server has (subresources included), in
// each of namespaces and across all namespaces, or cluster-wide.
func everyQuestion(t *testing.T, namespaces ...string) []access {
	t.Helper()
	lists, err := controlplanetest.ControlPlane(t).Client().Discovery().ServerPreferredResources()
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	var questions []access
	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range list.APIResources {
			scopes := []string{""}
			if r.Namespaced {
				scopes = append(slices.Clone(namespaces), "")
			}
			for _, verb := range r.Verbs {
				for _, ns := range scopes {
					questions = append(questions, access{schema.GroupResource{Group: gv.Group, Resource: r.Name}, verb, ns})
				}
			}
		}
	}
	return questions
}

func granted(grants []grant, q access) bool {
	for _, g := range grants {
		if g.group == q.gr.Group && g.resource == q.gr.Resource && slices.Contains(g.verbs, q.verb) &&
			(g.clusterWide || q.namespace == namespace) {
			return true
		}
	}
	return false
}

// allowedTo asks every question for the ServiceAccount sa in the services' namespace.
func allowedTo(t *testing.T, sa string, questions []access) map[access]bool {
	t.Helper()
	return allowedIn(t, namespace, sa, questions)
}

// allowedIn asks every question for the ServiceAccount sa of the namespace saNamespace.
func allowedIn(t *testing.T, saNamespace, sa string, questions []access) map[access]bool {
	t.Helper()
	cp := controlplanetest.ControlPlane(t)
	reviews := cp.Client().AuthorizationV1().SubjectAccessReviews()
	var mu sync.Mutex
	allowed := map[access]bool{}
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(16)
	for _, q := range questions {
		g.Go(func() error {
			resource, sub, _ := strings.Cut(q.gr.Resource, "/")
			r, err := reviews.Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User:   "system:serviceaccount:" + saNamespace + ":" + sa,
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + saNamespace, "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: q.namespace, Verb: q.verb, Group: q.gr.Group, Resource: resource, Subresource: sub,
				},
			}}, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("SubjectAccessReview %s for %s: %w", q, sa, err)
			}
			mu.Lock()
			allowed[q] = r.Status.Allowed
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return allowed
}
