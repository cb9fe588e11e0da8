package sparkconf

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fuzz targets hold the parsers to Spark's JavaUtils rules through small
// reference implementations in big integers, to round trips through the
// canonical form, and the entries to errors that name their key.

var byteUnits = []ByteUnit{Byte, KiB, MiB, GiB, TiB, PiB}

// referenceBytes is byteStringAs written out: lower-case, trim, digits, an
// optional suffix, and the conversion in exact arithmetic.
func referenceBytes(s string, unit ByteUnit) (int64, bool) {
	s = strings.ToLower(javaTrim(s))
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	digits, suffix := s[:i], s[i:]
	if digits == "" {
		return 0, false
	}
	from := unit
	if suffix != "" {
		u, ok := map[string]ByteUnit{"b": Byte, "k": KiB, "kb": KiB, "m": MiB, "mb": MiB, "g": GiB, "gb": GiB,
			"t": TiB, "tb": TiB, "p": PiB, "pb": PiB}[suffix]
		if !ok {
			return 0, false
		}
		from = u
	}
	n, ok := new(big.Int).SetString(digits, 10)
	if !ok || !n.IsInt64() { // Spark's Long.parseLong refuses it
		return 0, false
	}
	n.Mul(n, big.NewInt(int64(from)))
	n.Quo(n, big.NewInt(int64(unit)))
	if !n.IsInt64() {
		return 0, false
	}
	return n.Int64(), true
}

func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"1g", "512", "1.5g", "3kb", "99999999999999999999p", " 4G\t", "8191p", "8192p",
		"9223372036854775807", "9223372036854775807b", "9223372036854775808", "-1g", "1x", "", "g", "1500k", "1\u212a"} {
		f.Add(s, uint8(2))
	}
	f.Add("8796093022207m", uint8(0))
	f.Add("10b", uint8(1))
	f.Fuzz(func(t *testing.T, s string, u uint8) {
		unit := byteUnits[int(u)%len(byteUnits)]
		got, err := ParseBytes(s, unit)
		want, ok := referenceBytes(s, unit)
		switch {
		case ok != (err == nil):
			t.Fatalf("ParseBytes(%q, %d) = %d, %v; the reference accepts: %v (%d)", s, unit, got, err, ok, want)
		case err != nil:
			if err.Error() == "" {
				t.Fatalf("ParseBytes(%q): empty error", s)
			}
			return
		case got != want:
			t.Fatalf("ParseBytes(%q, %d) = %d, want %d", s, unit, got, want)
		case got < 0:
			t.Fatalf("ParseBytes(%q, %d) = %d: a negative size accepted", s, unit, got)
		}
		// The canonical form, a bare number in unit, reads back the same.
		if back, err := ParseBytes(strconv.FormatInt(got, 10), unit); err != nil || back != got {
			t.Fatalf("ParseBytes(%d) = %d, %v: no round trip", got, back, err)
		}
	})
}

var durationUnits = []time.Duration{time.Microsecond, time.Millisecond, time.Second, time.Minute}

// referenceDuration is timeStringAs written out, with overflow refused
// instead of saturated: Spark's TimeUnit.convert would clamp to Long.MAX_VALUE.
func referenceDuration(s string, unit time.Duration) (time.Duration, bool) {
	s = strings.ToLower(javaTrim(s))
	i := 0
	if strings.HasPrefix(s, "-") {
		i++
	}
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	digits, suffix := s[:i], s[i:]
	if digits == "" || digits == "-" {
		return 0, false
	}
	from := unit
	if suffix != "" {
		u, ok := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second,
			"m": time.Minute, "min": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[suffix]
		if !ok {
			return 0, false
		}
		from = u
	}
	n, ok := new(big.Int).SetString(digits, 10)
	if !ok || !n.IsInt64() {
		return 0, false
	}
	n.Mul(n, big.NewInt(int64(from)))
	n.Quo(n, big.NewInt(int64(unit))) // whole units, truncated toward zero
	n.Mul(n, big.NewInt(int64(unit)))
	if !n.IsInt64() {
		return 0, false
	}
	return time.Duration(n.Int64()), true
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30s", "1000", "2min", "1d", "250us", "-1500ms", "\t 5s\n", "1.5s", "1w", "", "-",
		"9223372036854775807d", "9223372036854775807us", "-9223372036854775808", "106751d", "106752d", "5S", "1e3ms"} {
		f.Add(s, uint8(1))
	}
	f.Add("9223372036854775", uint8(1))
	f.Add("-9223372036854", uint8(2))
	f.Fuzz(func(t *testing.T, s string, u uint8) {
		unit := durationUnits[int(u)%len(durationUnits)]
		got, err := ParseDuration(s, unit)
		want, ok := referenceDuration(s, unit)
		switch {
		case ok != (err == nil):
			t.Fatalf("ParseDuration(%q, %v) = %v, %v; the reference accepts: %v (%v)", s, unit, got, err, ok, want)
		case err != nil:
			return
		case got != want:
			t.Fatalf("ParseDuration(%q, %v) = %v, want %v", s, unit, got, want)
		case got%unit != 0:
			t.Fatalf("ParseDuration(%q, %v) = %v: not a whole number of %v", s, unit, got, unit)
		}
		if back, err := ParseDuration(strconv.FormatInt(int64(got/unit), 10), unit); err != nil || back != got {
			t.Fatalf("ParseDuration(%d) = %v, %v: no round trip of %v", got/unit, back, err, got)
		}
	})
}

// FuzzParseScalars covers booleans, 32-bit integers and decimals.
func FuzzParseScalars(f *testing.F) {
	for _, s := range []string{"true", " FALSE ", "yes", "0", "-2147483648", "2147483648", "+7", " 42\n", "1_000",
		"0.1", "1e308", "1e309", "NaN", "-Inf", "0x1p-2", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		trimmed := strings.ToLower(javaTrim(s))
		b, err := ParseBool(s)
		if (err == nil) != (trimmed == "true" || trimmed == "false") || (err == nil && strconv.FormatBool(b) != trimmed) {
			t.Fatalf("ParseBool(%q) = %v, %v", s, b, err)
		}

		n, err := ParseInt(s)
		ref, ok := new(big.Int).SetString(strings.TrimPrefix(javaTrim(s), "+"), 10)
		refOK := ok && ref.IsInt64() && ref.Int64() >= math.MinInt32 && ref.Int64() <= math.MaxInt32 &&
			!strings.HasPrefix(strings.TrimPrefix(javaTrim(s), "+"), "+") && !strings.Contains(s, "_")
		if (err == nil) != refOK || (err == nil && int64(n) != ref.Int64()) {
			t.Fatalf("ParseInt(%q) = %d, %v; reference %v %v", s, n, err, ref, refOK)
		}
		if err == nil {
			if back, err := ParseInt(strconv.Itoa(n)); err != nil || back != n {
				t.Fatalf("ParseInt(%d) = %d, %v: no round trip", n, back, err)
			}
		}

		x, err := ParseFloat(s)
		if err != nil {
			return
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			t.Fatalf("ParseFloat(%q) = %v: not a finite number", s, x)
		}
		if back, err := ParseFloat(strconv.FormatFloat(x, 'g', -1, 64)); err != nil || back != x {
			t.Fatalf("ParseFloat(%v) = %v, %v: no round trip", x, back, err)
		}
	})
}

// entryCase reads one declared entry and says what its accepted value
// breaks, if anything.
type entryCase struct {
	key, fallback string
	read          func(Conf) (broken string, err error)
}

func anyEntry[T any](e Entry[T]) entryCase {
	return entryCase{e.Key, e.Fallback, func(c Conf) (string, error) { _, err := e.Get(c); return "", err }}
}

// atLeast checks that an accepted value is at least lo.
func atLeast[T int | int64 | float64 | time.Duration](e Entry[T], lo T, strict bool) entryCase {
	return entryCase{e.Key, e.Fallback, func(c Conf) (string, error) {
		v, err := e.Get(c)
		if err == nil && (v < lo || (strict && v == lo)) {
			return fmt.Sprint(v), nil
		}
		return "", err
	}}
}

func oneOf(e Entry[string], allowed ...string) entryCase {
	return entryCase{e.Key, e.Fallback, func(c Conf) (string, error) {
		v, err := e.Get(c)
		if err != nil {
			return "", err
		}
		for _, a := range allowed {
			if v == a {
				return "", nil
			}
		}
		return v, nil
	}}
}

func portEntry(e Entry[int], zeroOrAbove int) entryCase {
	return entryCase{e.Key, e.Fallback, func(c Conf) (string, error) {
		v, err := e.Get(c)
		if err == nil && v != 0 && (v < zeroOrAbove || v > 65535) {
			return strconv.Itoa(v), nil
		}
		return "", err
	}}
}

// entryCases are the typed entries of keys.go.
var entryCases = []entryCase{
	portEntry(DriverPort, 0),
	portEntry(BlockManagerPort, 1024),
	oneOf(AppResourceType, "", "java", "python", "r"),
	oneOf(ImagePullPolicy, "Always", "Never", "IfNotPresent"),
	anyEntry(ExecutorContainerImage),
	anyEntry(ExecutorDisableConfigMap),
	anyEntry(ExecutorUseDriverPodIP),
	anyEntry(ExecutorCheckAllContainers),
	atLeast(ExecutorTerminationGracePeriod, 0, false),
	atLeast(ExecutorCores, 0, true),
	atLeast(ExecutorMemory, 0, true),
	atLeast(ExecutorMemoryOverhead, 0, false),
	atLeast(ExecutorMinMemoryOverhead, 0, false),
	atLeast(ExecutorMemoryOverheadFactor, 0, true),
	atLeast(KubernetesMemoryOverheadFactor, 0, true),
	anyEntry(MemoryOffHeapEnabled),
	atLeast(MemoryOffHeapSize, 0, false),
	atLeast(PySparkExecutorMemory, 0, false),
	anyEntry(LocalDirsTmpfs),
	anyEntry(Authenticate),
	anyEntry(DecommissionEnabled),
	anyEntry(ExecutorDeleteOnTermination),
	anyEntry(ExecutorSchedulerName),
}

// FuzzEntries sets one or two keys to arbitrary values and reads every
// entry: an accepted value passes the entry's check, and a refused one is an
// *Error naming the key that holds it, without repeating secrets.
func FuzzEntries(f *testing.F) {
	f.Add(uint8(10), "4g", uint8(11), "512m")
	f.Add(uint8(10), "0", uint8(9), "-1")
	f.Add(uint8(0), "70000", uint8(1), "80")
	f.Add(uint8(3), "always", uint8(2), "scala")
	f.Add(uint8(13), "NaN", uint8(14), "0")
	f.Add(uint8(8), "-1", uint8(16), "1p")
	f.Add(uint8(255), "hunter2", uint8(254), "x")
	f.Fuzz(func(t *testing.T, i uint8, v1 string, j uint8, v2 string) {
		// Indexes past the entries pick a secret key or a fallback key.
		pick := func(i uint8) string {
			switch n := int(i); {
			case n < len(entryCases):
				return entryCases[n].key
			case n%2 == 0:
				return AuthenticateSecret.Key
			default:
				return ContainerImage.Key
			}
		}
		conf := Conf{pick(i): v1, pick(j): v2}
		for _, ec := range entryCases {
			broken, err := ec.read(conf)
			if err == nil {
				if broken != "" {
					t.Fatalf("%s accepted %s from %v", ec.key, broken, conf)
				}
				continue
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("%s: error %v (%T) is not a *sparkconf.Error", ec.key, err, err)
			}
			if _, set := conf[cerr.Key]; !set || (cerr.Key != ec.key && cerr.Key != ec.fallback) {
				t.Fatalf("%s: error %q names key %q", ec.key, err, cerr.Key)
			}
			if msg := err.Error(); !strings.Contains(msg, cerr.Key) || cerr.Reason == "" || len(msg) > len(cerr.Key)+len(cerr.Reason)+maxValueInError*6+40 {
				t.Fatalf("%s: unhelpful error %q", ec.key, msg)
			}
		}
		secret := Error{Key: AuthenticateSecret.Key, Value: v1, Reason: "bad"}
		if want := fmt.Sprintf("spark configuration %s=%q: bad", secret.Key, "<redacted>"); v1 != "" && secret.Error() != want {
			t.Fatalf("error %q repeats a secret", secret.Error())
		}
	})
}
