package storage

import (
	"context"
	"testing"
	"time"
)

func TestWatchGetsProgressNotifications(t *testing.T) {
	eachClient(t, func(t *testing.T, startStore starter) {
		s, _ := startStore(t, t.TempDir())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rev, err := s.Create(ctx, "/registry/pr/a", []byte("1"), nil)
		if err != nil {
			t.Fatal(err)
		}
		ch := s.Watch(ctx, "/registry/pr/", rev)
		// etcd notifies progress only once the store's revision reached the
		// watch's start (rev+1): write elsewhere.
		other, err := s.Create(ctx, "/registry/other/b", []byte("1"), nil)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case res := <-ch:
			if res.Err != nil || len(res.Events) != 0 || res.Revision < other {
				t.Fatalf("got %+v, want a progress notification at revision %d or later", res, other)
			}
		case <-ctx.Done():
			t.Fatal("no progress notification in 30s")
		}
	})
}
