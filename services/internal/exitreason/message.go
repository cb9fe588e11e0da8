package exitreason

import (
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
)

// finishedMessage writes the message of a succeeded or failed executor.
//
// Spark writes it as an interpolated multi-line literal and then strips the
// margin of the whole result, its own layout and the interpolated values alike.
// The template lines carry no margin once laid out here, so stripping the
// assembled string gives Spark's bytes, including for a pod status message
// that spans several lines. The template's closing line is six spaces,
// which is why the message ends in "\n" and six spaces.
func finishedMessage(id int64, code int32, e *sparkpodsv1.Executor) string {
	var b strings.Builder
	b.WriteString("\nThe executor with id ")
	b.WriteString(strconv.FormatInt(id, 10))
	b.WriteString(" exited with exit code ")
	b.WriteString(strconv.FormatInt(int64(code), 10))
	b.WriteString(Describe(code))
	b.WriteString(".\n")
	// Kubernetes leaves an empty reason or message out of the pod, so Spark
	// sees null and writes an empty line; an empty string here means the same.
	if r := e.GetStatusReason(); r != "" {
		b.WriteString("The API gave the following brief reason: ")
		b.WriteString(r)
	}
	b.WriteString("\n")
	if m := e.GetStatusMessage(); m != "" {
		b.WriteString("The API gave the following message: ")
		b.WriteString(m)
	}
	b.WriteString("\n\nThe API gave the following container statuses:\n\n")
	b.WriteString(containersDescription(e.GetContainerStatuses()))
	b.WriteString("\n      ")
	return stripMargin(b.String())
}

// containersDescription describes container statuses the way Spark's
// KubernetesUtils.containersDescription does with its default indent of one
// tab: a block per status, blocks joined by an empty line, each line of a
// block "\n\t <key>: <value>".
func containersDescription(statuses []*sparkpodsv1.ContainerStatus) string {
	blocks := make([]string, 0, len(statuses))
	for _, cs := range statuses {
		var b strings.Builder
		writePair(&b, "container name", cs.GetName())
		writePair(&b, "container image", cs.GetImage())
		switch cs.GetState() {
		case sparkpodsv1.ContainerState_CONTAINER_STATE_RUNNING:
			writePair(&b, "container state", "running")
			writePair(&b, "container started at", formatTime(cs.GetStartTime()))
		case sparkpodsv1.ContainerState_CONTAINER_STATE_TERMINATED:
			writePair(&b, "container state", "terminated")
			writePair(&b, "container started at", formatTime(cs.GetStartTime()))
			writePair(&b, "container finished at", formatTime(cs.GetFinishTime()))
			writePair(&b, "exit code", strconv.FormatInt(int64(cs.GetExitCode()), 10))
			writePair(&b, "termination reason", cs.GetReason())
		case sparkpodsv1.ContainerState_CONTAINER_STATE_WAITING:
			writePair(&b, "container state", "waiting")
			writePair(&b, "pending reason", cs.GetReason())
		default:
			writePair(&b, "container state", "N/A")
		}
		blocks = append(blocks, b.String())
	}
	return strings.Join(blocks, "\n\n")
}

// writePair writes one line of a container block; Spark prints a missing or
// empty value as N/A.
func writePair(b *strings.Builder, key, value string) {
	if value == "" {
		value = "N/A"
	}
	b.WriteString("\n\t ")
	b.WriteString(key)
	b.WriteString(": ")
	b.WriteString(value)
}

// formatTime prints a container timestamp as Spark does: the string the API
// server sent, which is RFC 3339 in UTC to the second (2026-01-02T15:04:05Z),
// or "" (printed N/A) when it is unset. The zero time counts as unset: it is
// what an absent Kubernetes timestamp becomes in Go, and the API server
// sends it as null.
func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	t := ts.AsTime()
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// stripMargin is Scala 2.13's StringOps.stripMargin with '|' as the margin
// character: on every line, a leading run of blanks and control characters
// followed by '|' is removed together with the '|'. Scala ends lines at "\n",
// "\r" and "\r\n"; ending them at every '\r' and '\n' strips the same bytes,
// since the empty line this puts between '\r' and '\n' has no margin. Working
// on bytes is exact because every byte tested is ASCII, and no byte of a
// multi-byte UTF-8 character is at or below ' '.
func stripMargin(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for len(s) > 0 {
		end := len(s)
		if i := strings.IndexAny(s, "\r\n"); i >= 0 {
			end = i + 1
		}
		line := s[:end]
		s = s[end:]
		i := 0
		for i < len(line) && line[i] <= ' ' {
			i++
		}
		if i < len(line) && line[i] == '|' {
			line = line[i+1:]
		}
		b.WriteString(line)
	}
	return b.String()
}
