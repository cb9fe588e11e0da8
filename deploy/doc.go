// Package deploy holds the manifests that run sparkpods on a Kubernetes cluster: base/ is a
// Kustomize base with each service as its own Deployment, Service and ServiceAccount with the
// least RBAC it needs, speaking mutual TLS with the certificate of its Secret
// sparkpods-<service>-tls, and example roles (sparkpods-scheduler, sparkpods-viewer) that grant
// the services' callers access to the applications of a namespace; overlays/ deploys it
// cluster-wide or confined to one namespace. The package has no code. Its tests build the base
// and overlays with kubectl kustomize and check their shape (TLS mounts and flags, HTTP
// probes) and, on the real local control plane (deploy/local), apply them server-side, check
// every ServiceAccount's permissions and the user roles' with SubjectAccessReviews against all
// the API server's resources, run the four service binaries with their ServiceAccounts'
// tokens, and run the Python and Java clients (clients/python, clients/java) against them.
package deploy
