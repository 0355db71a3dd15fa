package component

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"testing"
)

type fake struct {
	name     string
	startErr error
	log      *[]string
}

func (f *fake) Name() string               { return f.name }
func (f *fake) Init(context.Context) error { *f.log = append(*f.log, "init "+f.name); return nil }
func (f *fake) Start(context.Context) error {
	*f.log = append(*f.log, "start "+f.name)
	return f.startErr
}
func (f *fake) Stop() error { *f.log = append(*f.log, "stop "+f.name); return nil }

func TestManagerOrder(t *testing.T) {
	var log []string
	m := NewManager(slog.New(slog.DiscardHandler))
	m.Add(&fake{name: "a", log: &log}, &fake{name: "b", log: &log})
	ctx := context.Background()
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	want := []string{"init a", "init b", "start a", "start b", "stop b", "stop a"}
	if !reflect.DeepEqual(log, want) {
		t.Errorf("got %v, want %v", log, want)
	}
}

func TestManagerFailedStartStopsStarted(t *testing.T) {
	var log []string
	boom := errors.New("boom")
	m := NewManager(slog.New(slog.DiscardHandler))
	m.Add(&fake{name: "a", log: &log}, &fake{name: "b", log: &log, startErr: boom}, &fake{name: "c", log: &log})
	err := m.Start(context.Background())
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want %v", err, boom)
	}
	want := []string{"start a", "start b", "stop b", "stop a"}
	if !reflect.DeepEqual(log, want) {
		t.Errorf("got %v, want %v", log, want)
	}
}
