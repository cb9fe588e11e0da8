package sparkconf

import (
	"maps"
	"testing"
)

func TestRedacted(t *testing.T) {
	for _, tc := range []struct {
		name    string
		conf    Conf
		want    Conf
		wantErr bool
	}{
		{
			name: "Spark's default pattern, on keys and on values",
			conf: Conf{
				"spark.authenticate.secret":               "s3cr3t",
				"spark.hadoop.fs.s3a.access.key":          "AKIA",
				"spark.ssl.keyPassword":                   "pw",
				"spark.executorEnv.API_TOKEN":             "t",
				"spark.executorEnv.OPAQUE":                "my-password-is-here",
				"spark.executor.memory":                   "4g",
				"spark.kubernetes.executor.label.accessx": "ok",
			},
			want: Conf{
				"spark.authenticate.secret":               RedactedValue,
				"spark.hadoop.fs.s3a.access.key":          RedactedValue,
				"spark.ssl.keyPassword":                   RedactedValue,
				"spark.executorEnv.API_TOKEN":             RedactedValue,
				"spark.executorEnv.OPAQUE":                RedactedValue,
				"spark.executor.memory":                   "4g",
				"spark.kubernetes.executor.label.accessx": "ok",
			},
		},
		{
			// The pattern matches its own value, and Spark redacts it too.
			name: "the application's own pattern replaces the default",
			conf: Conf{"spark.redaction.regex": "(?i)internal", "spark.internal.url": "x", "spark.authenticate.secret": "s"},
			want: Conf{"spark.redaction.regex": RedactedValue, "spark.internal.url": RedactedValue, "spark.authenticate.secret": "s"},
		},
		{
			name:    "a pattern that does not compile falls back to the default",
			conf:    Conf{"spark.redaction.regex": "(", "spark.authenticate.secret": "s", "spark.app.name": "a"},
			want:    Conf{"spark.redaction.regex": "(", "spark.authenticate.secret": RedactedValue, "spark.app.name": "a"},
			wantErr: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := maps.Clone(tc.conf)
			got, err := tc.conf.Redacted()
			if (err != nil) != tc.wantErr {
				t.Errorf("err = %v, want error %v", err, tc.wantErr)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("Redacted() = %v, want %v", got, tc.want)
			}
			if !maps.Equal(tc.conf, before) {
				t.Errorf("Redacted changed its receiver: %v", tc.conf)
			}
		})
	}
}
