package allocation

import (
	"fmt"
	"slices"
	"testing"
)

// Spark's suite: "SPARK-36052: test splitSlots".
func TestSplitSlots(t *testing.T) {
	tests := []struct {
		consumers, slots int
		want             []int
	}{
		{1, 0, []int{0}},
		{1, 1, []int{1}},
		{1, 2, []int{2}},
		{3, 0, []int{0, 0, 0}},
		{3, 1, []int{1, 0, 0}},
		{3, 2, []int{1, 1, 0}},
		{3, 3, []int{1, 1, 1}},
		{3, 4, []int{2, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d slots over %d", tt.slots, tt.consumers), func(t *testing.T) {
			if got := splitSlots(tt.consumers, tt.slots); !slices.Equal(got, tt.want) {
				t.Errorf("splitSlots(%d, %d) = %v, want %v", tt.consumers, tt.slots, got, tt.want)
			}
		})
	}
}
