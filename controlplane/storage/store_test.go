package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// starter starts an embedded etcd in dir and returns a Store on it.
type starter func(t testing.TB, dir string) (*Store, *Embedded)

// eachClient runs test with the two ways the API server reaches etcd: in
// process, as `skiff server` does with its embedded etcd, and over gRPC,
// as it does with an external cluster.
func eachClient(t *testing.T, test func(t *testing.T, startStore starter)) {
	for _, inProcess := range []bool{true, false} {
		name := "grpc"
		if inProcess {
			name = "in-process"
		}
		t.Run(name, func(t *testing.T) {
			test(t, func(t testing.TB, dir string) (*Store, *Embedded) { return startStore(t, dir, inProcess) })
		})
	}
}

func startStore(t testing.TB, dir string, inProcess bool) (*Store, *Embedded) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	ctx := context.Background()
	e, err := StartEmbedded(ctx, EmbeddedConfig{
		DataDir: dir, ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0", UnsafeNoFsync: true,
	}, log)
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	var c *clientv3.Client
	if inProcess {
		c = e.Client()
	} else if c, err = NewClient(ctx, ClientConfig{Endpoints: []string{e.ClientURL()}}); err != nil {
		e.Close()
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() {
		c.Close()
		e.Close()
	})
	return NewStore(c, log, nil), e
}

func TestCreateGetUpdateDelete(t *testing.T) {
	eachClient(t, func(t *testing.T, startStore starter) {
		s, _ := startStore(t, t.TempDir())
		ctx := context.Background()
		rev, err := s.Create(ctx, "/registry/x/a", []byte("1"), nil)
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		if _, err := s.Create(ctx, "/registry/x/a", []byte("2"), nil); !errors.Is(err, ErrExists) {
			t.Fatalf("second create: got %v, want ErrExists", err)
		}
		kv, err := s.Get(ctx, "/registry/x/a")
		if err != nil || string(kv.Value) != "1" || kv.ModRevision != rev {
			t.Fatalf("get: got %+v %v, want value 1 at %d", kv, err, rev)
		}
		if _, err := s.Update(ctx, "/registry/x/a", []byte("3"), rev-1, nil); !errors.Is(err, ErrConflict) {
			t.Fatalf("stale update: got %v, want ErrConflict", err)
		}
		if _, err := s.Update(ctx, "/registry/x/missing", []byte("3"), rev, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("update of missing: got %v, want ErrNotFound", err)
		}
		rev2, err := s.Update(ctx, "/registry/x/a", []byte("3"), rev, nil)
		if err != nil || rev2 <= rev {
			t.Fatalf("update: got rev %d err %v, want > %d", rev2, err, rev)
		}
		if _, err := s.Delete(ctx, "/registry/x/a", rev, nil); !errors.Is(err, ErrConflict) {
			t.Fatalf("stale delete: got %v, want ErrConflict", err)
		}
		if _, err := s.Delete(ctx, "/registry/x/a", rev2, nil); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if _, err := s.Get(ctx, "/registry/x/a"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get after delete: got %v, want ErrNotFound", err)
		}
		if _, err := s.Delete(ctx, "/registry/x/a", 0, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("delete of missing: got %v, want ErrNotFound", err)
		}
	})
}

func TestCreateWithConditionsIsAtomic(t *testing.T) {
	eachClient(t, func(t *testing.T, startStore starter) {
		s, _ := startStore(t, t.TempDir())
		ctx := context.Background()
		if _, err := s.Create(ctx, "/registry/alloc/1", []byte("other"), nil); err != nil {
			t.Fatal(err)
		}
		_, err := s.Create(ctx, "/registry/svc/a", []byte("svc"), []Condition{{Key: "/registry/alloc/1"}},
			Op{Key: "/registry/alloc/1", Value: []byte("a")})
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("create with taken allocation: got %v, want ErrConflict", err)
		}
		if _, err := s.Get(ctx, "/registry/svc/a"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("service after failed txn: got %v, want ErrNotFound", err)
		}
	})
}

func TestListPaging(t *testing.T) {
	eachClient(t, func(t *testing.T, startStore starter) {
		s, _ := startStore(t, t.TempDir())
		ctx := context.Background()
		for i := range 10 {
			if _, err := s.Create(ctx, fmt.Sprintf("/registry/p/%02d", i), []byte("v"), nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Create(ctx, "/registry/px/other", []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
		first, err := s.List(ctx, "/registry/p/", ListOptions{Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		if len(first.Items) != 4 || !first.More || first.Remaining != 6 {
			t.Fatalf("first page: got %d items more=%v remaining=%d, want 4 true 6", len(first.Items), first.More, first.Remaining)
		}
		// A write after the first page must not show in the next pages read
		// at the first page's revision.
		if _, err := s.Create(ctx, "/registry/p/99", []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, kv := range first.Items {
			keys = append(keys, kv.Key)
		}
		next := first.Items[3].Key + "\x00"
		for {
			page, err := s.List(ctx, "/registry/p/", ListOptions{Limit: 4, StartKey: next, Revision: first.Revision})
			if err != nil {
				t.Fatal(err)
			}
			for _, kv := range page.Items {
				keys = append(keys, kv.Key)
			}
			if !page.More {
				break
			}
			next = page.Items[len(page.Items)-1].Key + "\x00"
		}
		if len(keys) != 10 || keys[9] != "/registry/p/09" {
			t.Fatalf("paged keys: got %v, want /registry/p/00../registry/p/09", keys)
		}
		n, err := s.Count(ctx, "/registry/p/")
		if err != nil || n != 11 {
			t.Fatalf("count: got %d %v, want 11", n, err)
		}
	})
}

func TestWatchFromRevisionAndCompaction(t *testing.T) {
	eachClient(t, func(t *testing.T, startStore starter) {
		s, _ := startStore(t, t.TempDir())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r1, _ := s.Create(ctx, "/registry/w/a", []byte("1"), nil)
		r2, _ := s.Update(ctx, "/registry/w/a", []byte("2"), r1, nil)
		r3, _ := s.Delete(ctx, "/registry/w/a", r2, nil)

		ch := s.Watch(ctx, "/registry/w/", r1)
		var got []Event
		for len(got) < 2 {
			res, ok := <-ch
			if !ok || res.Err != nil {
				t.Fatalf("watch ended early: %v", res.Err)
			}
			got = append(got, res.Events...)
		}
		if got[0].Type != EventPut || string(got[0].Value) != "2" || string(got[0].PrevValue) != "1" || got[0].Revision != r2 {
			t.Errorf("first event: got %+v, want put 2 (prev 1) at %d", got[0], r2)
		}
		if got[1].Type != EventDelete || string(got[1].PrevValue) != "2" || got[1].Revision != r3 {
			t.Errorf("second event: got %+v, want delete (prev 2) at %d", got[1], r3)
		}

		if err := s.Compact(ctx, r3); err != nil {
			t.Fatalf("compact: %v", err)
		}
		res := <-s.Watch(ctx, "/registry/w/", r1)
		var ce *CompactedError
		if !errors.As(res.Err, &ce) || ce.Compacted != r3 {
			t.Fatalf("watch from compacted revision: got %v, want CompactedError at %d", res.Err, r3)
		}
		if _, err := s.List(ctx, "/registry/w/", ListOptions{Revision: r1}); !errors.Is(err, ErrCompacted) {
			t.Fatalf("list at compacted revision: got %v, want ErrCompacted", err)
		}
		if _, err := s.List(ctx, "/registry/w/", ListOptions{Revision: r3 + 1000}); !errors.Is(err, ErrFutureRevision) {
			t.Fatalf("list at future revision: got %v, want ErrFutureRevision", err)
		}
	})
}

func TestRestartKeepsDataAndRevisions(t *testing.T) {
	eachClient(t, func(t *testing.T, startStore starter) {
		dir := t.TempDir()
		s, e := startStore(t, dir)
		ctx := context.Background()
		rev, err := s.Create(ctx, "/registry/r/a", []byte("1"), nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Client().Close()
		e.Close()

		s2, _ := startStore(t, dir)
		kv, err := s2.Get(ctx, "/registry/r/a")
		if err != nil || kv.ModRevision != rev {
			t.Fatalf("after restart: got %+v %v, want revision %d", kv, err, rev)
		}
	})
}

func TestCompactorStep(t *testing.T) {
	eachClient(t, func(t *testing.T, startStore starter) {
		s, _ := startStore(t, t.TempDir())
		ctx := context.Background()
		c := NewCompactor(s.Client(), time.Hour, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
		other := NewCompactor(s.Client(), time.Hour, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
		v, rev, compacted, err := c.step(ctx, 0, 0)
		if err != nil || compacted != 0 || v != 1 {
			t.Fatalf("first step: got version %d compacted %d err %v, want 1 0 nil", v, compacted, err)
		}
		// Another server's first step sees the version moved and does nothing.
		ov, _, oc, err := other.step(ctx, 0, 0)
		if err != nil || oc != 0 || ov != 1 {
			t.Fatalf("other's step: got version %d compacted %d err %v, want 1 0 nil", ov, oc, err)
		}
		_, _, compacted, err = c.step(ctx, v, rev)
		if err != nil || compacted != rev {
			t.Fatalf("second step: got compacted %d err %v, want %d", compacted, err, rev)
		}
	})
}
