package podspec

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strconv"
	"strings"
)

const (
	// dnsLabelMaxLength is the longest DNS-1123 label: hostnames and label
	// values.
	dnsLabelMaxLength = 63
	// maxPodNamePrefixLength is Spark 4.2's limit on the executor pod name
	// prefix: a DNS subdomain (253) minus "-exec-" and the longest id.
	maxPodNamePrefixLength = 253 - len("-exec-") - 10
)

var (
	notNameChars     = regexp.MustCompile(`[^a-z0-9-]`)
	dashRuns         = regexp.MustCompile(`-+`)
	leadingNonWord   = regexp.MustCompile(`^\W+`)
	notHostnameChars = regexp.MustCompile(`[^\w-]+`)
)

// PodName is Spark's executor pod name, <prefix>-exec-<id>.
func PodName(prefix string, executorID int64) string {
	return prefix + "-exec-" + strconv.FormatInt(executorID, 10)
}

// DerivedPodNamePrefix is the pod name prefix Spark derives from the
// application name when spark.kubernetes.executor.podNamePrefix is unset:
// "<appName>-<id>" lower-cased, every character outside [a-z0-9-] replaced by
// a dash, runs of dashes collapsed, and an x put before a leading digit.
// Spark's id is random; here it is a hash of the namespace and application
// id, so an application always gets the same names.
func DerivedPodNamePrefix(appName, namespace, appID string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + appID))
	id := hex.EncodeToString(sum[:8])
	name := strings.ToLower(strings.TrimSpace(appName))
	name = dashRuns.ReplaceAllString(notNameChars.ReplaceAllString(name, "-"), "-")
	name = strings.Trim(name, "-")
	if limit := maxPodNamePrefixLength - len(id) - 2; len(name) > limit {
		name = strings.TrimRight(name[:limit], "-")
	}
	prefix := id
	if name != "" {
		prefix = name + "-" + id
	}
	if prefix[0] >= '0' && prefix[0] <= '9' {
		prefix = "x" + prefix
	}
	return prefix
}

// hostname is Spark's executor hostname: the last 63 characters of the pod
// name, leading non-word characters dropped, and runs of characters other than
// word characters and dashes replaced. Spark replaces them with an
// underscore, which the API server refuses in spec.hostname, so a pod name
// prefix with a dot (a valid DNS-1123 subdomain, which Spark accepts) would
// never get a pod; a dash keeps the hostname a valid DNS-1123 label.
func hostname(podName string) string {
	h := podName
	if len(h) > dnsLabelMaxLength {
		h = h[len(h)-dnsLabelMaxLength:]
	}
	h = leadingNonWord.ReplaceAllString(h, "")
	return notHostnameChars.ReplaceAllString(h, "-")
}

// appNameLabel is Spark's spark-app-name label value: the application name
// lower-cased, characters outside [a-z0-9-] replaced by dashes, runs of dashes
// collapsed, cut to 63 characters, and (unlike Spark, so that the value is
// always valid) without leading or trailing dashes.
func appNameLabel(appName string) string {
	v := strings.ToLower(strings.TrimSpace(appName))
	v = dashRuns.ReplaceAllString(notNameChars.ReplaceAllString(v, "-"), "-")
	if len(v) > dnsLabelMaxLength {
		v = v[:dnsLabelMaxLength]
	}
	return strings.Trim(v, "-")
}

// substituteIDs replaces Spark's {{APP_ID}} and {{EXECUTOR_ID}} placeholders.
func substituteIDs(s, appID, executorID string) string {
	if !strings.Contains(s, "{{") {
		return s
	}
	return strings.NewReplacer("{{APP_ID}}", appID, "{{EXECUTOR_ID}}", executorID).Replace(s)
}

// splitCommandString splits a string of arguments the way Spark's
// Utils.splitCommandString does: on spaces, tabs and newlines outside quotes;
// single quotes keep everything literally; in double quotes a backslash makes
// the next character literal; outside quotes a backslash is an ordinary
// character.
func splitCommandString(s string) []string {
	var (
		words                      []string
		cur                        strings.Builder
		inWord, inSingle, inDouble bool
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case inDouble:
			switch c {
			case '"':
				inDouble = false
			case '\\':
				if i < len(rs)-1 {
					cur.WriteRune(rs[i+1])
					i++
				}
			default:
				cur.WriteRune(c)
			}
		case inSingle:
			if c == '\'' {
				inSingle = false
			} else {
				cur.WriteRune(c)
			}
		case c == '"':
			inWord, inDouble = true, true
		case c == '\'':
			inWord, inSingle = true, true
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if inWord || inDouble || inSingle {
		words = append(words, cur.String())
	}
	return words
}
