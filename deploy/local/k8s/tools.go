//go:build tools

// Package k8stools pins the Kubernetes control-plane commands that the local
// control plane runs. It is never compiled into sparkpods; the Makefile builds
// the commands below from this module so their versions come from go.mod.
package k8stools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
