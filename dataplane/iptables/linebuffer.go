package iptables

import (
	"bytes"
	"fmt"
)

// lineBuffer accumulates iptables-restore lines, as kube-proxy's
// proxyutil.LineBuffer does.
type lineBuffer interface {
	// Write joins its arguments (each a string or []string) with spaces
	// and ends the line.
	Write(args ...any)
	Reset()
	Bytes() []byte
	Lines() int
}

type realLineBuffer struct {
	b     bytes.Buffer
	lines int
}

func (buf *realLineBuffer) Write(args ...any) {
	for i, arg := range args {
		if i > 0 {
			buf.b.WriteByte(' ')
		}
		switch x := arg.(type) {
		case string:
			buf.b.WriteString(x)
		case []string:
			for j, s := range x {
				if j > 0 {
					buf.b.WriteByte(' ')
				}
				buf.b.WriteString(s)
			}
		default:
			panic(fmt.Sprintf("lineBuffer: unknown argument type %T", x))
		}
	}
	buf.b.WriteByte('\n')
	buf.lines++
}

func (buf *realLineBuffer) Reset()        { buf.b.Reset(); buf.lines = 0 }
func (buf *realLineBuffer) Bytes() []byte { return buf.b.Bytes() }
func (buf *realLineBuffer) Lines() int    { return buf.lines }

// discardLineBuffer counts lines and keeps nothing: the chains of
// unchanged Services in a partial sync go there.
type discardLineBuffer struct{ lines int }

func (buf *discardLineBuffer) Write(args ...any) { buf.lines++ }
func (buf *discardLineBuffer) Reset()            { buf.lines = 0 }
func (buf *discardLineBuffer) Bytes() []byte     { return nil }
func (buf *discardLineBuffer) Lines() int        { return buf.lines }
