package application

import "testing"

// TestRoundOnSnapshotFollowsSparkKeys checks how the allocator picks its
// pacing: sparkpods' fast rounds by default, Spark's pacing when the
// application sets Spark's batch delay itself, and the sparkpods key winning
// when both are set.
func TestRoundOnSnapshotFollowsSparkKeys(t *testing.T) {
	tests := []struct {
		name string
		conf map[string]string
		want bool
	}{
		{name: "defaults", conf: map[string]string{}, want: true},
		{name: "Spark's batch delay set", conf: map[string]string{"spark.kubernetes.allocation.batch.delay": "1s"}, want: false},
		{name: "sparkpods key off", conf: map[string]string{"sparkpods.allocation.roundOnSnapshot": "false"}, want: false},
		{name: "both set, sparkpods key wins", conf: map[string]string{
			"spark.kubernetes.allocation.batch.delay": "1s", "sparkpods.allocation.roundOnSnapshot": "true"}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSettings(tt.conf)
			if err != nil {
				t.Fatalf("ParseSettings: %v", err)
			}
			if s.RoundOnSnapshot != tt.want {
				t.Fatalf("RoundOnSnapshot = %t, want %t", s.RoundOnSnapshot, tt.want)
			}
		})
	}
}
