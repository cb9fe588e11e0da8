// Package sparkconf gives typed access to a Spark application's
// configuration, the flat string map a Spark driver holds in its SparkConf
// and forwards to sparkpods when the application registers.
//
// It knows Spark's keys and defaults (the ones executor pod management reads;
// see ../shared/SPARK.md §8) and parses values the way Spark does: sizes such
// as "4g" or "512m" with Spark's binary suffixes and a per-key default unit,
// durations such as "30s" or "1000" with a per-key default unit, and
// booleans, integers and decimals. A value that does not parse or is out of
// range is an *Error that names the key, so a service can answer
// InvalidArgument with a message that tells the user which setting to fix.
//
// Entries are declared once, like Spark's ConfigEntry:
//
//	memMiB, err := sparkconf.ExecutorMemory.Get(conf)
//
// Besides Spark's own keys, a few keys under the prefix "sparkpods." carry
// facts that the Spark driver knows but does not keep in its configuration
// (the Spark version, the driver's user name, the executor ConfigMap name);
// see the Sparkpods* entries.
package sparkconf
