package sparkpodsctl

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/yaml"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// Output formats, as kubectl's -o.
const (
	OutputTable = "table"
	OutputJSON  = "json"
	OutputYAML  = "yaml"
)

func validOutput(o string) error {
	switch o {
	case OutputTable, OutputJSON, OutputYAML:
		return nil
	}
	return usageError{fmt.Errorf("--output %q: want table, json or yaml", o)}
}

// printMessage writes a response as JSON (protojson, the field names of the
// API's JSON mapping, as grpcurl prints them), as one-line JSON
// ("json-line", for streams) or as YAML.
func printMessage(w io.Writer, format string, m proto.Message) error {
	opts := protojson.MarshalOptions{}
	if format == OutputJSON {
		opts.Multiline, opts.Indent = true, "  "
	}
	data, err := opts.Marshal(m)
	if err != nil {
		return err
	}
	if format == OutputYAML {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
		return nil
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}

// table is a tab-aligned table with an upper-case header, as kubectl prints.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)}
	t.row(toAny(header)...)
	return t
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func (t *table) row(cells ...any) {
	parts := make([]string, len(cells))
	for i, c := range cells {
		parts[i] = fmt.Sprint(c)
		if parts[i] == "" {
			parts[i] = "<none>"
		}
	}
	_, _ = fmt.Fprintln(t.tw, strings.Join(parts, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// stateName is an executor state as a word: Running, Failed, …
func stateName(s sparkpodsv1.ExecutorState) string {
	n := strings.TrimPrefix(s.String(), "EXECUTOR_STATE_")
	return strings.ToUpper(n[:1]) + strings.ToLower(n[1:])
}

func eventTypeName(t sparkpodsv1.ExecutorEventType) string {
	switch t {
	case sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_REMOVED:
		return "Removed"
	case sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_EXECUTOR_MISSING:
		return "Missing"
	case sparkpodsv1.ExecutorEventType_EXECUTOR_EVENT_TYPE_FAILURE_LIMIT_EXCEEDED:
		return "FailureLimitExceeded"
	}
	return t.String()
}

// age is a kubectl-style age: 5s, 3m, 2h, 4d.
func age(ts *timestamppb.Timestamp, now time.Time) string {
	if ts == nil {
		return ""
	}
	d := now.Sub(ts.AsTime())
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// firstSentence is the head of Spark's loss message, which goes on with the
// pod's reason and container statuses.
func firstSentence(msg string) string {
	msg = strings.TrimSpace(msg)
	if i := strings.Index(msg, "\n"); i >= 0 {
		msg = msg[:i]
	}
	if i := strings.Index(msg, ". "); i >= 0 {
		msg = msg[:i+1]
	}
	return msg
}

func exitCode(e *sparkpodsv1.Executor) string {
	if t := e.GetTermination(); t != nil {
		return fmt.Sprint(t.GetExitCode())
	}
	return ""
}

func countsCells(c *sparkpodsv1.ExecutorCounts) []any {
	return []any{c.GetPending(), c.GetRunning(), c.GetSucceeded(), c.GetFailed(), c.GetDeleted()}
}

// noneFound is kubectl's "No resources found" for an empty table.
func noneFound(o *options, what string) {
	_, _ = fmt.Fprintf(o.streams.ErrOut, "No %s found in namespace %s.\n", what, o.namespace)
}

func printApplications(w io.Writer, apps []*sparkpodsv1.ApplicationSummary) error {
	t := newTable(w, "NAMESPACE", "APP", "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "DELETED", "REVISION")
	for _, a := range apps {
		t.row(append(append([]any{a.GetNamespace(), a.GetAppId()}, countsCells(a.GetCounts())...), a.GetRevision())...)
	}
	return t.flush()
}

func printExecutors(w io.Writer, execs []*sparkpodsv1.Executor, now time.Time) error {
	t := newTable(w, "ID", "STATE", "PROFILE", "POD", "NODE", "EXIT", "REASON", "AGE")
	for _, e := range execs {
		reason := e.GetTermination().GetReason()
		if e.GetDecommissioning() {
			reason = strings.TrimPrefix(reason+",Decommissioning", ",")
		}
		t.row(e.GetExecutorId(), stateName(e.GetState()), e.GetResourceProfileId(), e.GetPodName(), e.GetNodeName(),
			exitCode(e), reason, age(e.GetCreateTime(), now))
	}
	return t.flush()
}

func eventHeader(w io.Writer) *table {
	return newTable(w, "SEQ", "TYPE", "EXECUTOR", "PROFILE", "STATE", "EXIT", "BY-APP", "AGE", "REASON")
}

func eventRow(t *table, ev *sparkpodsv1.ExecutorEvent, now time.Time) {
	state := ""
	if ev.GetState() != sparkpodsv1.ExecutorState_EXECUTOR_STATE_UNSPECIFIED {
		state = stateName(ev.GetState())
	}
	t.row(ev.GetSequence(), eventTypeName(ev.GetType()), ev.GetExecutorId(), ev.GetResourceProfileId(), state,
		ev.GetExit().GetExitCode(), ev.GetExit().GetExitCausedByApp(), age(ev.GetTime(), now), firstSentence(ev.GetExit().GetMessage()))
}

func printEvents(w io.Writer, evs []*sparkpodsv1.ExecutorEvent, now time.Time) error {
	t := eventHeader(w)
	for _, ev := range evs {
		eventRow(t, ev, now)
	}
	return t.flush()
}

func printProfiles(w io.Writer, profiles []*sparkpodsv1.ProfileAllocation) error {
	t := newTable(w, "PROFILE", "TARGET", "RUNNING", "PENDING", "OUTSTANDING", "NEWLY-CREATED", "BLOCKED")
	for _, p := range profiles {
		blocked := p.GetBlockedReason()
		if blocked == "" {
			blocked = "-"
		}
		t.row(p.GetResourceProfileId(), p.GetTarget(), p.GetRunning(), p.GetPending(), p.GetOutstanding(),
			len(p.GetNewlyCreatedExecutorIds()), blocked)
	}
	return t.flush()
}
