package sparkconf

import (
	"fmt"
	"sort"
	"strings"
)

// Conf is a Spark application's configuration: Spark keys to their string
// values, exactly as a SparkConf holds them. A Conf is read-only once built;
// share it freely between goroutines.
type Conf map[string]string

// Get returns the raw value of key and whether it is set.
func (c Conf) Get(key string) (string, bool) {
	v, ok := c[key]
	return v, ok
}

// WithPrefix returns the entries whose key starts with prefix, with the prefix
// removed from the keys, like SparkConf.getAllWithPrefix. Spark's prefix
// families (spark.kubernetes.executor.label.*, spark.executorEnv.*, …) are
// read with it.
func (c Conf) WithPrefix(prefix string) map[string]string {
	out := map[string]string{}
	for k, v := range c {
		if strings.HasPrefix(k, prefix) {
			out[k[len(prefix):]] = v
		}
	}
	return out
}

// SortedKeys returns the keys of m in lexical order. Spark iterates its hash
// maps in an unspecified order; sparkpods sorts instead, so that the same
// configuration always yields the same pod.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Error is an invalid or missing Spark configuration value. Key is the Spark
// key to fix; Value is what was given (empty when the key is missing);
// Reason says what is wrong in words a user can act on.
type Error struct {
	Key    string
	Value  string
	Reason string
}

// maxValueInError bounds how much of a value an error message repeats: a pod
// template can be kilobytes of YAML.
const maxValueInError = 80

func (e *Error) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("spark configuration %s: %s", e.Key, e.Reason)
	}
	v := e.Value
	if isSecretKey(e.Key) {
		v = "<redacted>"
	} else if len(v) > maxValueInError {
		v = v[:maxValueInError] + "…"
	}
	return fmt.Sprintf("spark configuration %s=%q: %s", e.Key, v, e.Reason)
}

// isSecretKey reports whether a key's value must not be repeated in messages.
func isSecretKey(key string) bool {
	k := strings.ToLower(key)
	return strings.Contains(k, "secret") || strings.Contains(k, "password") || strings.Contains(k, "token")
}
