package eventstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sparkpodsv1 "github.com/sparkpods/sparkpods/proto/gen/go/sparkpods/v1"
	"github.com/sparkpods/sparkpods/services/lifecycle/internal/reconcile"
)

// Labels, annotations and data keys of a segment ConfigMap.
const (
	LabelManagedBy      = "app.kubernetes.io/managed-by"
	ManagedBy           = "sparkpods-lifecycle"
	LabelAppID          = "spark-app-selector"
	LabelSegment        = "sparkpods.io/event-segment"
	AnnotationAppID     = "sparkpods.io/app-id"
	AnnotationLast      = "sparkpods.io/last-sequence"
	AnnotationAcked     = "sparkpods.io/acknowledged-sequence"
	KeyEvents           = "events.jsonl"
	KeyState            = "state.json"
	segmentNamePrefix   = "sparkpods-events-"
	maxAppPartInName    = 40
	maxEventMessageSize = 32 << 10
)

// Selector selects every segment of every application.
var Selector = LabelManagedBy + "=" + ManagedBy

// AppSelector selects the segments of one application.
func AppSelector(appID string) string {
	return Selector + "," + LabelAppID + "=" + appID
}

// segment is one ConfigMap of an application's log, as the store holds it.
type segment struct {
	n               int
	name            string
	resourceVersion string
	// events are the segment's events still kept, in sequence order.
	events []*sparkpodsv1.ExecutorEvent
	// lines are events encoded, one per event, without the newline.
	lines [][]byte
	// last is the segment's last-sequence annotation: the application's
	// last sequence when the segment was written.
	last  int64
	acked int64
	state reconcile.State
	// owners are the ConfigMap's owner references, set when it is created.
	owners []metav1.OwnerReference
}

func (s *segment) size() int {
	n := 0
	for _, l := range s.lines {
		n += len(l) + 1
	}
	return n
}

var notNameChar = regexp.MustCompile(`[^a-z0-9-]+`)

// segmentName is a valid, stable ConfigMap name for segment n of an
// application: readable, and unique thanks to a hash of the exact id.
func segmentName(appID string, n int) string {
	part := strings.Trim(notNameChar.ReplaceAllString(strings.ToLower(appID), "-"), "-")
	if len(part) > maxAppPartInName {
		part = strings.Trim(part[:maxAppPartInName], "-")
	}
	sum := sha256.Sum256([]byte(appID))
	return segmentNamePrefix + part + "-" + hex.EncodeToString(sum[:4]) + "-" + strconv.Itoa(n)
}

// encodeEvent turns an event into one line of events.jsonl. A loss message
// longer than maxEventMessageSize (a pod status message of kilobytes) is cut,
// so that one event can never fill a segment.
func encodeEvent(ev *sparkpodsv1.ExecutorEvent) ([]byte, error) {
	if msg := ev.GetExit().GetMessage(); len(msg) > maxEventMessageSize {
		ev = cloneWithMessage(ev, msg[:maxEventMessageSize]+"… (cut by sparkpods)")
	}
	b, err := protojson.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode event %d: %w", ev.GetSequence(), err)
	}
	// protojson never writes a raw newline (strings are escaped), and it may
	// add spaces; compact it so the line format is stable.
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil, fmt.Errorf("compact event %d: %w", ev.GetSequence(), err)
	}
	return out.Bytes(), nil
}

func decodeEvents(data string) ([]*sparkpodsv1.ExecutorEvent, [][]byte, error) {
	var (
		events []*sparkpodsv1.ExecutorEvent
		lines  [][]byte
	)
	for i, line := range strings.Split(data, "\n") {
		if line == "" {
			continue
		}
		ev := &sparkpodsv1.ExecutorEvent{}
		if err := protojson.Unmarshal([]byte(line), ev); err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		events = append(events, ev)
		lines = append(lines, []byte(line))
	}
	return events, lines, nil
}

// toConfigMap renders s as the ConfigMap of application key.
func (s *segment) toConfigMap(key AppKey) (*corev1.ConfigMap, error) {
	state, err := json.Marshal(s.state)
	if err != nil {
		return nil, fmt.Errorf("encode reconcile state: %w", err)
	}
	var events strings.Builder
	for _, l := range s.lines {
		events.Write(l)
		events.WriteByte('\n')
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       key.Namespace,
			Name:            s.name,
			ResourceVersion: s.resourceVersion,
			Labels: map[string]string{
				LabelManagedBy: ManagedBy,
				LabelAppID:     key.AppID,
				LabelSegment:   strconv.Itoa(s.n),
			},
			Annotations: map[string]string{
				AnnotationAppID: key.AppID,
				AnnotationLast:  strconv.FormatInt(s.last, 10),
				AnnotationAcked: strconv.FormatInt(s.acked, 10),
			},
		},
		Data: map[string]string{KeyEvents: events.String(), KeyState: string(state)},
	}
	cm.OwnerReferences = s.owners
	return cm, nil
}

// fromConfigMap reads a segment back. The application is named by the
// app-id annotation (labels may not hold every id exactly).
func fromConfigMap(cm *corev1.ConfigMap) (AppKey, *segment, error) {
	key := AppKey{Namespace: cm.Namespace, AppID: cm.Annotations[AnnotationAppID]}
	if key.AppID == "" {
		key.AppID = cm.Labels[LabelAppID]
	}
	n, err := strconv.Atoi(cm.Labels[LabelSegment])
	if err != nil || n < 1 {
		return key, nil, fmt.Errorf("label %s=%q is not a segment number", LabelSegment, cm.Labels[LabelSegment])
	}
	s := &segment{n: n, name: cm.Name, resourceVersion: cm.ResourceVersion, owners: cm.OwnerReferences}
	if s.last, err = strconv.ParseInt(cm.Annotations[AnnotationLast], 10, 64); err != nil {
		return key, nil, fmt.Errorf("annotation %s: %w", AnnotationLast, err)
	}
	if v, ok := cm.Annotations[AnnotationAcked]; ok {
		if s.acked, err = strconv.ParseInt(v, 10, 64); err != nil {
			return key, nil, fmt.Errorf("annotation %s: %w", AnnotationAcked, err)
		}
	}
	if s.events, s.lines, err = decodeEvents(cm.Data[KeyEvents]); err != nil {
		return key, nil, fmt.Errorf("%s: %w", KeyEvents, err)
	}
	if st := cm.Data[KeyState]; st != "" {
		if err := json.Unmarshal([]byte(st), &s.state); err != nil {
			return key, nil, fmt.Errorf("%s: %w", KeyState, err)
		}
	}
	return key, s, nil
}

func cloneWithMessage(ev *sparkpodsv1.ExecutorEvent, msg string) *sparkpodsv1.ExecutorEvent {
	c := proto.CloneOf(ev)
	c.Exit.Message = msg
	return c
}
