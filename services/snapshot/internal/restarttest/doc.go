// Package restarttest holds the snapshot service's test across a
// kube-apiserver restart. It has no code of its own: the test kills and
// restarts the API server of its control plane, so it gets a control plane
// (a test package) to itself.
package restarttest
