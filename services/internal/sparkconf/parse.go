package sparkconf

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ByteUnit is the unit of a size: a bare number in a size setting is read in
// the key's default unit, as Spark's bytesConf does.
type ByteUnit int64

// The binary units Spark's size suffixes name.
const (
	Byte ByteUnit = 1
	KiB  ByteUnit = 1 << 10
	MiB  ByteUnit = 1 << 20
	GiB  ByteUnit = 1 << 30
	TiB  ByteUnit = 1 << 40
	PiB  ByteUnit = 1 << 50
)

var byteSuffixes = map[string]ByteUnit{
	"b": Byte, "k": KiB, "kb": KiB, "m": MiB, "mb": MiB,
	"g": GiB, "gb": GiB, "t": TiB, "tb": TiB, "p": PiB, "pb": PiB,
}

var (
	wholeSizeRE    = regexp.MustCompile(`^([0-9]+)([a-z]+)?$`)
	fractionSizeRE = regexp.MustCompile(`^([0-9]+\.[0-9]+)([a-z]+)?$`)
	durationRE     = regexp.MustCompile(`^(-?[0-9]+)([a-z]+)?$`)
)

// ParseBytes reads a size the way Spark's JavaUtils.byteStringAs does and
// returns it in unit: case-insensitive, surrounding spaces ignored, a whole
// number with an optional suffix (b, k/kb, m/mb, g/gb, t/tb, p/pb, all
// binary), a bare number meaning unit. Converting to a larger unit rounds
// down ("1500k" is 1 MiB), as Spark does. Fractions are refused.
func ParseBytes(s string, unit ByteUnit) (int64, error) {
	lower := strings.ToLower(javaTrim(s))
	m := wholeSizeRE.FindStringSubmatch(lower)
	if m == nil {
		if fractionSizeRE.MatchString(lower) {
			return 0, errors.New("fractional sizes are not supported; use a smaller unit, for example 1536m instead of 1.5g")
		}
		return 0, errors.New("not a size: want a whole number with an optional suffix b, k, m, g, t or p, for example 4g")
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, errors.New("size out of range")
	}
	from := unit
	if m[2] != "" {
		u, ok := byteSuffixes[m[2]]
		if !ok {
			return 0, fmt.Errorf("unknown size suffix %q: want b, k, m, g, t or p", m[2])
		}
		from = u
	}
	return convertBytes(n, from, unit)
}

func convertBytes(n int64, from, to ByteUnit) (int64, error) {
	if from > to {
		ratio := int64(from / to)
		if n > math.MaxInt64/ratio {
			return 0, errors.New("size out of range")
		}
		return n * ratio, nil
	}
	return n / int64(to/from), nil
}

var durationSuffixes = map[string]time.Duration{
	"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second,
	"m": time.Minute, "min": time.Minute, "h": time.Hour, "d": 24 * time.Hour,
}

// ParseDuration reads a duration the way Spark's JavaUtils.timeStringAs does:
// case-insensitive, a whole (possibly negative) number with an optional
// suffix (us, ms, s, m or min, h, d), a bare number meaning unit. Like Spark,
// which converts to the key's unit with TimeUnit.convert, the result is a
// whole number of unit, truncated toward zero: "1500ms" for a key in seconds
// is 1s, and "999us" for a key in milliseconds is 0.
func ParseDuration(s string, unit time.Duration) (time.Duration, error) {
	m := durationRE.FindStringSubmatch(strings.ToLower(javaTrim(s)))
	if m == nil {
		return 0, errors.New("not a duration: want a whole number with an optional suffix us, ms, s, m, h or d, for example 30s")
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, errors.New("duration out of range")
	}
	from := unit
	if m[2] != "" {
		var ok bool
		if from, ok = durationSuffixes[m[2]]; !ok {
			return 0, fmt.Errorf("unknown duration suffix %q: want us, ms, s, m, h or d", m[2])
		}
	}
	var count int64 // whole units
	if from >= unit {
		f := int64(from / unit)
		if n > math.MaxInt64/f || n < math.MinInt64/f {
			return 0, errors.New("duration out of range")
		}
		count = n * f
	} else {
		count = n / int64(unit/from)
	}
	if count > int64(math.MaxInt64/unit) || count < int64(math.MinInt64/unit) {
		return 0, errors.New("duration out of range")
	}
	return time.Duration(count) * unit, nil
}

// javaTrim trims what Java's String.trim, and so Spark, trims: every
// character up to U+0020.
func javaTrim(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return r <= ' ' })
}

// ParseBool reads a boolean the way Spark's booleanConf does: "true" or
// "false" in any case, surrounding spaces ignored.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(javaTrim(s)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, errors.New("want true or false")
}

// ParseInt reads a 32-bit integer, like Spark's intConf.
func ParseInt(s string) (int, error) {
	n, err := strconv.ParseInt(javaTrim(s), 10, 32)
	if err != nil {
		return 0, errors.New("want a whole number")
	}
	return int(n), nil
}

// ParseFloat reads a decimal number, like Spark's doubleConf.
func ParseFloat(s string) (float64, error) {
	f, err := strconv.ParseFloat(javaTrim(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errors.New("want a decimal number")
	}
	return f, nil
}
