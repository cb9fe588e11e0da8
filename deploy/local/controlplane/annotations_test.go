package controlplane

import (
	"bytes"
	"testing"
)

// The annotation names are spelled twice, in Go and in kwok.yaml's stage selectors and
// templates; a typo on either side would silently disable a stage.
func TestKwokConfigUsesAnnotations(t *testing.T) {
	for _, a := range []string{AnnotationHoldPending, AnnotationStartDelay, AnnotationExitCode, AnnotationRunDuration, AnnotationExitReason} {
		if !bytes.Contains(kwokConfig, []byte(`"`+a+`"`)) {
			t.Errorf("kwok.yaml does not use annotation %q", a)
		}
	}
}
