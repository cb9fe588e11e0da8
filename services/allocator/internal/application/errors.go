package application

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned for an application that is not registered.
var ErrNotFound = errors.New("application is not registered")

// ErrNotReady is returned while the allocator restores its applications
// and waits for the snapshot stream; the caller may retry.
var ErrNotReady = errors.New("the allocator is starting: restoring applications and syncing snapshots")

// FieldError is an invalid request field or Spark value that the caller
// must fix.
type FieldError struct {
	// Field names the request field or Spark key.
	Field string
	// Reason says what is wrong.
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErrorf(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// PreconditionError is a request that cannot succeed in the current state:
// registering again with a different configuration, or naming a driver pod
// that does not exist.
type PreconditionError struct {
	msg string
}

func (e *PreconditionError) Error() string { return e.msg }

// DependencyError is a failed call to a service the allocator depends on
// (the pod manager, the Kubernetes API). The caller may retry; the cause is
// logged, not shown.
type DependencyError struct {
	// Service names the dependency, for example "podmanager".
	Service string
	// Op is what was attempted.
	Op  string
	Err error
}

func (e *DependencyError) Error() string {
	return fmt.Sprintf("%s: %s: %v", e.Service, e.Op, e.Err)
}

func (e *DependencyError) Unwrap() error { return e.Err }
