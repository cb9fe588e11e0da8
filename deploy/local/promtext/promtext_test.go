package promtext

import (
	"strings"
	"testing"
)

func TestParseAndSum(t *testing.T) {
	page := `# HELP apiserver_request_total Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",resource="pods",verb="LIST"} 3
apiserver_request_total{code="200",resource="pods",verb="WATCH"} 1
apiserver_request_total{code="200",resource="configmaps",verb="LIST"} 5

go_memstats_heap_alloc_bytes 1.5e+06
`
	m, err := Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"apiserver_request_total", nil, 9},
		{"apiserver_request_total", []string{`verb="LIST"`}, 8},
		{"apiserver_request_total", []string{`verb="LIST"`, `resource="pods"`}, 3},
		{"apiserver_request_total", []string{`verb="DELETE"`}, 0},
		{"go_memstats_heap_alloc_bytes", nil, 1.5e6},
		{"go_memstats", nil, 0},
	} {
		if got := m.Sum(c.name, c.labels...); got != c.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestParseRefusesALineWithoutAValue(t *testing.T) {
	for _, page := range []string{"lonely_metric\n", "metric{a=\"b\"} many\n"} {
		if _, err := Parse(strings.NewReader(page)); err == nil {
			t.Errorf("Parse(%q) succeeded", page)
		}
	}
}
