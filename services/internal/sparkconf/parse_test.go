package sparkconf

import (
	"testing"
	"time"
)

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in      string
		unit    ByteUnit
		want    int64
		wantErr bool
	}{
		{in: "1g", unit: MiB, want: 1024},
		{in: "1G", unit: MiB, want: 1024},
		{in: " 512m ", unit: MiB, want: 512},
		{in: "512", unit: MiB, want: 512},
		{in: "512", unit: Byte, want: 512},
		{in: "1500k", unit: MiB, want: 1}, // Spark rounds down to the target unit.
		{in: "2gb", unit: MiB, want: 2048},
		{in: "1t", unit: GiB, want: 1024},
		{in: "1p", unit: TiB, want: 1024},
		{in: "10b", unit: KiB, want: 0},
		{in: "3k", unit: Byte, want: 3072},
		{in: "1.5g", unit: MiB, wantErr: true},
		{in: "-1g", unit: MiB, wantErr: true},
		{in: "1x", unit: MiB, wantErr: true},
		{in: "", unit: MiB, wantErr: true},
		{in: "g", unit: MiB, wantErr: true},
		{in: "9223372036854775807p", unit: Byte, wantErr: true},
		{in: "99999999999999999999", unit: MiB, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBytes(tt.in, tt.unit)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseBytes(%q) = %d, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseBytes(%q, %d) = %d, %v; want %d", tt.in, tt.unit, got, err, tt.want)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		unit    time.Duration
		want    time.Duration
		wantErr bool
	}{
		{in: "30s", unit: time.Millisecond, want: 30 * time.Second},
		{in: "1000", unit: time.Millisecond, want: time.Second},
		{in: "5", unit: time.Second, want: 5 * time.Second},
		{in: "2m", unit: time.Second, want: 2 * time.Minute},
		{in: "2min", unit: time.Second, want: 2 * time.Minute},
		{in: "1h", unit: time.Second, want: time.Hour},
		{in: "1d", unit: time.Second, want: 24 * time.Hour},
		// Spark converts to the key's unit, truncating toward zero.
		{in: "250us", unit: time.Second, want: 0},
		{in: "1500ms", unit: time.Second, want: time.Second},
		{in: "999us", unit: time.Millisecond, want: 0},
		{in: "-1500ms", unit: time.Second, want: -time.Second},
		{in: "\t 5s\n", unit: time.Millisecond, want: 5 * time.Second},
		{in: "9223372036854775807d", unit: time.Millisecond, wantErr: true},
		{in: "-1", unit: time.Second, want: -time.Second},
		{in: "1.5s", unit: time.Second, wantErr: true},
		{in: "1w", unit: time.Second, wantErr: true},
		{in: "", unit: time.Second, wantErr: true},
		{in: "9999999999999d", unit: time.Second, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in, tt.unit)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseDuration(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseBool(t *testing.T) {
	for in, want := range map[string]bool{"true": true, "TRUE": true, " false ": false, "False": false} {
		if got, err := ParseBool(in); err != nil || got != want {
			t.Errorf("ParseBool(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "yes", "1", "t"} {
		if _, err := ParseBool(in); err == nil {
			t.Errorf("ParseBool(%q): want an error", in)
		}
	}
}
