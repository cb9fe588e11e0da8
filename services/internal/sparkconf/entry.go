package sparkconf

import (
	"errors"
	"strings"
	"time"
)

// Entry is one Spark configuration key with its type, default and checks,
// like Spark's ConfigEntry. Declare entries once (see keys.go) and read them
// with Get or Lookup. Entries are values; the With* methods return copies.
type Entry[T any] struct {
	// Key is the Spark key, for example "spark.executor.memory".
	Key string
	// Default is what Get returns when neither Key nor the fallback is set.
	Default T
	// Fallback, when not empty, is the key consulted when Key is unset, as
	// spark.kubernetes.executor.container.image falls back to
	// spark.kubernetes.container.image.
	Fallback string

	parse func(string) (T, error)
	check func(T) error
}

// Lookup returns the value of the entry and whether it (or its fallback) is
// set. A value that does not parse or fails the entry's check is an *Error
// naming the key that holds it.
func (e Entry[T]) Lookup(c Conf) (T, bool, error) {
	key, raw, ok := e.resolve(c)
	if !ok {
		return e.Default, false, nil
	}
	v, err := e.parse(raw)
	if err == nil && e.check != nil {
		err = e.check(v)
	}
	if err != nil {
		var zero T
		return zero, true, &Error{Key: key, Value: raw, Reason: err.Error()}
	}
	return v, true, nil
}

// Get returns the value of the entry, or its default when unset.
func (e Entry[T]) Get(c Conf) (T, error) {
	v, _, err := e.Lookup(c)
	return v, err
}

// Require returns the value of the entry, or an *Error naming the key when
// neither it nor its fallback is set to a non-blank value.
func (e Entry[T]) Require(c Conf) (T, error) {
	if _, raw, ok := e.resolve(c); !ok || strings.TrimSpace(raw) == "" {
		var zero T
		reason := "required but not set"
		if e.Fallback != "" {
			reason = "required but not set (nor " + e.Fallback + ")"
		}
		return zero, &Error{Key: e.Key, Reason: reason}
	}
	return e.Get(c)
}

// resolve finds the key that holds the entry's value and its raw value.
func (e Entry[T]) resolve(c Conf) (key, raw string, ok bool) {
	if raw, ok := c.Get(e.Key); ok {
		return e.Key, raw, true
	}
	if e.Fallback != "" {
		if raw, ok := c.Get(e.Fallback); ok {
			return e.Fallback, raw, true
		}
	}
	return "", "", false
}

// WithCheck returns a copy of e whose values must pass check; check returns
// the reason a value is refused.
func (e Entry[T]) WithCheck(check func(T) error) Entry[T] {
	e.check = check
	return e
}

// WithFallback returns a copy of e that reads key when e.Key is unset.
func (e Entry[T]) WithFallback(key string) Entry[T] {
	e.Fallback = key
	return e
}

// String declares a string entry.
func String(key, def string) Entry[string] {
	return Entry[string]{Key: key, Default: def, parse: func(s string) (string, error) { return s, nil }}
}

// Bool declares a boolean entry ("true"/"false", any case).
func Bool(key string, def bool) Entry[bool] {
	return Entry[bool]{Key: key, Default: def, parse: ParseBool}
}

// Int declares a 32-bit integer entry.
func Int(key string, def int) Entry[int] {
	return Entry[int]{Key: key, Default: def, parse: ParseInt}
}

// Float declares a decimal entry.
func Float(key string, def float64) Entry[float64] {
	return Entry[float64]{Key: key, Default: def, parse: ParseFloat}
}

// Bytes declares a size entry whose values are returned in unit; a bare
// number in the configuration is read in unit too. def is in unit.
func Bytes(key string, unit ByteUnit, def int64) Entry[int64] {
	return Entry[int64]{Key: key, Default: def, parse: func(s string) (int64, error) { return ParseBytes(s, unit) }}
}

// Duration declares a duration entry; a bare number in the configuration is
// read in unit.
func Duration(key string, unit, def time.Duration) Entry[time.Duration] {
	return Entry[time.Duration]{Key: key, Default: def, parse: func(s string) (time.Duration, error) { return ParseDuration(s, unit) }}
}

// Positive refuses zero and negative numbers.
func Positive[T int | int64 | float64 | time.Duration](v T) error {
	if v <= 0 {
		return errors.New("must be greater than 0")
	}
	return nil
}

// NonNegative refuses negative numbers.
func NonNegative[T int | int64 | float64 | time.Duration](v T) error {
	if v < 0 {
		return errors.New("must not be negative")
	}
	return nil
}

// OneOf refuses strings outside allowed (compared exactly, as Spark does).
func OneOf(allowed ...string) func(string) error {
	return func(s string) error {
		for _, a := range allowed {
			if s == a {
				return nil
			}
		}
		msg := "must be one of"
		for i, a := range allowed {
			if i > 0 {
				msg += ","
			}
			msg += " " + a
		}
		return errors.New(msg)
	}
}
