package apiserver

import "testing"

func TestWithResourceVersion(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"object", `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a"},"spec":{}}`,
			`{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"42","name":"a"},"spec":{}}`},
		{"empty metadata", `{"kind":"Pod","apiVersion":"v1","metadata":{}}`,
			`{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"42"}}`},
		{"no metadata", `{"kind":"Pod"}`, ""},
		{"truncated", `{"kind":"Pod","metadata":{`, ""},
	}
	for _, tc := range tests {
		if got := string(withResourceVersion([]byte(tc.in), 42)); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}
