package deploy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
)

// grant is one permission a service needs: verbs on a resource ("pods", "pods/log") of an API
// group, where scope says.
type grant struct {
	group, resource string
	verbs           []string
	scope           scope
}

// scope is where a grant holds.
type scope int

const (
	// ownNamespace grants hold in the services' own namespace only.
	ownNamespace scope = iota
	// everyNamespace grants hold in every namespace, and in the single-namespace overlay in
	// its namespace only.
	everyNamespace
	// cluster grants are on a cluster-scoped resource, in both overlays.
	cluster
)

// Every service checks the callers from outside the services (access/reviews.go): a bearer
// token with a TokenReview, the call with a SubjectAccessReview.
var (
	tokenReviews  = grant{"authentication.k8s.io", "tokenreviews", []string{"create"}, cluster}
	accessReviews = grant{"authorization.k8s.io", "subjectaccessreviews", []string{"create"}, cluster}
)

// needs is exactly what each service calls, read from its code (the client-go calls under
// services/<name>/internal and services/internal/access): anything more is a finding,
// anything less fails the services.
var needs = map[string][]grant{
	// source.go: one list+watch of pods in all namespaces (or a namespace set).
	"snapshot": {{"", "pods", []string{"get", "list", "watch"}, everyNamespace}, tokenReviews, accessReviews},
	// kubepods.go: create, get, list, delete and patch executor pods; get the driver pod.
	"podmanager": {{"", "pods", []string{"get", "list", "create", "patch", "delete"}, everyNamespace}, tokenReviews, accessReviews},
	// manager.go gets the driver pod and lists the executor pods of the applications it
	// restores; store.go keeps one ConfigMap per application in the application's
	// namespace; leader.go holds a Lease in its own namespace.
	"allocator": {
		{"", "pods", []string{"get", "list"}, everyNamespace},
		{"", "configmaps", []string{"get", "list", "create", "update", "delete"}, everyNamespace},
		{"coordination.k8s.io", "leases", []string{"get", "create", "update"}, ownNamespace},
		tokenReviews, accessReviews,
	},
	// eventstore/configmaps.go keeps events in ConfigMaps beside the application; adapters.go
	// gets the driver pod to own them.
	"lifecycle": {
		{"", "pods", []string{"get"}, everyNamespace},
		{"", "configmaps", []string{"list", "create", "update", "delete"}, everyNamespace},
		tokenReviews, accessReviews,
	},
}

// userRoles are the base's roles for the users of sparkpods (user-roles.yaml) and exactly the
// verbs on sparkpods.io/applications each grants: the scheduler every verb the services ask
// for (services/internal/access/rules.go), the viewer those that only read.
var userRoles = map[string][]string{
	"sparkpods-scheduler": {"get", "list", "watch", "create", "update", "delete"},
	"sparkpods-viewer":    {"get", "list", "watch"},
}

// applications is what the services' SubjectAccessReviews ask about; no API serves it.
var applications = schema.GroupResource{Group: "sparkpods.io", Resource: "applications"}

// otherNamespace stands for any namespace Spark applications run in.
const otherNamespace = "spark-apps"

// access is one question to the authorizer.
type access struct {
	gr        schema.GroupResource // Resource may be "pods/log"
	verb      string
	namespace string // "" for cluster-scoped resources, or all namespaces
	name      string // "" for any object
}

func (a access) String() string {
	ns := a.namespace
	if ns == "" {
		ns = "*"
	}
	if a.name != "" {
		return fmt.Sprintf("%s %s %s in %s", a.verb, a.gr, a.name, ns)
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
				ns := namespace
				if g.scope == cluster {
					ns = ""
				}
				for _, v := range g.verbs {
					q := access{gr: schema.GroupResource{Group: g.group, Resource: g.resource}, verb: v, namespace: ns}
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
					questions = append(questions, access{gr: schema.GroupResource{Group: gv.Group, Resource: r.Name}, verb: verb, namespace: ns})
				}
			}
		}
	}
	return questions
}

// granted is whether grants allow q with the base's RBAC.
func granted(grants []grant, q access) bool {
	return slices.ContainsFunc(grants, func(g grant) bool {
		return g.allows(q) && (g.scope != ownNamespace || q.namespace == namespace)
	})
}

// allows is whether g is about q's verb and resource, wherever it holds.
func (g grant) allows(q access) bool {
	return g.group == q.gr.Group && g.resource == q.gr.Resource && slices.Contains(g.verbs, q.verb)
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
					Namespace: q.namespace, Verb: q.verb, Group: q.gr.Group, Resource: resource, Subresource: sub, Name: q.name,
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

// TestUserRoles binds each user role with a RoleBinding in one namespace, as an operator binds
// a Spark driver's ServiceAccount, and asks the API server what the bound ServiceAccount may
// do: its role's verbs on sparkpods.io/applications in that namespace, as the services ask
// (named by the application id), and nothing else: no other verb, namespace or resource
// beyond what an unbound ServiceAccount may do anyway.
func TestUserRoles(t *testing.T) {
	applied(t)
	ns := controlplanetest.Namespace(t)
	questions := everyQuestion(t, ns, otherNamespace)
	for _, verb := range []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"} {
		for _, in := range []string{ns, otherNamespace, ""} {
			questions = append(questions,
				access{gr: applications, verb: verb, namespace: in},
				access{gr: applications, verb: verb, namespace: in, name: "spark-app"})
		}
	}
	baseline := allowedIn(t, ns, "sparkpods-nobody", questions)
	for role, verbs := range userRoles {
		t.Run(role, func(t *testing.T) {
			sa := strings.TrimPrefix(role, "sparkpods-")
			bindAndWait(t, ns, role, sa, access{gr: applications, verb: verbs[0], namespace: ns})
			allowed := allowedIn(t, ns, sa, questions)
			for _, q := range questions {
				inRole := q.gr == applications && q.namespace == ns && slices.Contains(verbs, q.verb)
				if inRole && baseline[q] {
					t.Fatalf("an unbound ServiceAccount may %s: the check has no teeth", q)
				}
				if want := baseline[q] || inRole; allowed[q] != want {
					t.Errorf("%s bound in %s may %s: %v, want %v", role, ns, q, allowed[q], want)
				}
			}
		})
	}
}

// bindAndWait binds the ClusterRole role to the ServiceAccount sa of ns with a RoleBinding in
// ns, and waits until the authorizer, which reads bindings from its cache, allows sa q.
func bindAndWait(t *testing.T, ns, role, sa string, q access) {
	t.Helper()
	cp := controlplanetest.ControlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := cp.Client().RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("bind %s: %v", role, err)
	}
	err = wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(context.Context) (bool, error) {
		return allowedIn(t, ns, sa, []access{q})[q], nil
	})
	if err != nil {
		t.Fatalf("%s bound in %s is never allowed to %s: %v", sa, ns, q, err)
	}
}
