package apiserver

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/skiff-project/skiff/controlplane/registry"
	"github.com/skiff-project/skiff/controlplane/storage"
)

// unusedStore fails the test if the server touches storage.
type unusedStore struct{ storage.Interface }

func TestRequestsBeyondTheInFlightLimitGet429(t *testing.T) {
	s, err := New(Config{Store: unusedStore{}, Resources: registry.Resources(), MaxRequestsInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.inflight <- struct{}{} // one request is being served
	tests := []struct {
		path string
		want int
	}{
		{"/api/v1/namespaces", http.StatusTooManyRequests},
		{"/apis", http.StatusTooManyRequests},
		{"/healthz", http.StatusOK},
		{"/version", http.StatusOK},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != tc.want {
			t.Errorf("GET %s: got %d %s, want %d", tc.path, rec.Code, rec.Body, tc.want)
		}
		if tc.want == http.StatusTooManyRequests && rec.Header().Get("Retry-After") != "1" {
			t.Errorf("GET %s: got Retry-After %q, want 1", tc.path, rec.Header().Get("Retry-After"))
		}
	}
	<-s.inflight
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/apis", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("GET /apis with room: got %d, want 200", rec.Code)
	}
}
