package kubeclient

import "testing"

func TestParseMasterURL(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "k8s://https://10.0.0.1:6443", want: "https://10.0.0.1:6443"},
		{in: "k8s://10.0.0.1:6443", want: "https://10.0.0.1:6443"},
		{in: "k8s://http://127.0.0.1:8080", want: "http://127.0.0.1:8080"},
		{in: "https://api.example.com", want: "https://api.example.com"},
		{in: "k8s://https://api.example.com/", want: "https://api.example.com"},
		{in: "spark://host:7077", wantErr: true},
		{in: "k8s://", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMasterURL(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseMasterURL(%q) = %q, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMasterURL(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseMasterURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
