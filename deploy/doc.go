// Package deploy holds the manifests that run sparkpods on a Kubernetes cluster: base/ is a
// Kustomize base with each service as its own Deployment, Service and ServiceAccount with the
// least RBAC it needs. The package has no code. Its tests build the base with kubectl
// kustomize and, on the real local control plane (deploy/local), apply it server-side, check
// every ServiceAccount's permissions with SubjectAccessReviews against all the API server's
// resources, run the four service binaries with their ServiceAccounts' tokens, and run the
// Python and Java clients (clients/python, clients/java) against them.
package deploy
