package app_test

import (
	"testing"

	"github.com/sparkpods/sparkpods/deploy/local/controlplane"
	"github.com/sparkpods/sparkpods/deploy/local/controlplane/controlplanetest"
)

// The tests of this package run the whole snapshot service against one real
// local control plane (etcd, kube-apiserver, kube-scheduler,
// kube-controller-manager and kwok); `go test -short` skips them.
func TestMain(m *testing.M) { controlplanetest.Main(m, controlplane.Options{}) }
