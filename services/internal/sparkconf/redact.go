package sparkconf

import (
	"fmt"
	"regexp"
)

// RedactionRegex is spark.redaction.regex: entries whose key or value it
// matches are shown redacted, as Spark's UI and logs show them.
var RedactionRegex = String("spark.redaction.regex", `(?i)secret|password|token|access[.]key`)

// RedactedValue replaces a redacted value, Spark's own replacement text.
const RedactedValue = "*********(redacted)"

var defaultRedaction = regexp.MustCompile(RedactionRegex.Default)

// Redacted returns a copy of c for showing to callers: every entry whose
// key or value matches the application's spark.redaction.regex (Spark's
// default when unset) has its value replaced with RedactedValue, as Spark
// redacts its environment page and event log. A regex that does not
// compile falls back to the default, so that a bad setting never reveals
// secrets.
func (c Conf) Redacted() (Conf, error) {
	pattern := defaultRedaction
	var err error
	if expr, ok := c.Get(RedactionRegex.Key); ok {
		if p, compileErr := regexp.Compile(expr); compileErr == nil {
			pattern = p
		} else {
			err = fmt.Errorf("%s %q does not compile, so Spark's default redacts instead: %w", RedactionRegex.Key, expr, compileErr)
		}
	}
	out := make(Conf, len(c))
	for k, v := range c {
		if pattern.MatchString(k) || pattern.MatchString(v) {
			v = RedactedValue
		}
		out[k] = v
	}
	return out, err
}
