package benchrun

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

type opts struct{ timeout time.Duration }

func parse(args []string, stderr io.Writer) (opts, error) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := opts{}
	fs.DurationVar(&o.timeout, "timeout", time.Minute, "")
	return o, fs.Parse(args)
}

func TestMainExitStatus(t *testing.T) {
	errRun, errClose := errors.New("run broke"), errors.New("close broke")
	cases := []struct {
		name       string
		args       []string
		prepareErr error
		run        func(context.Context) error
		closeErr   error
		want       int
		wantOut    []string
		wantClosed bool
	}{
		{name: "ok", run: func(context.Context) error { return nil }, want: 0, wantClosed: true},
		{name: "bad flag", args: []string{"-nope"}, want: 2, wantOut: []string{"t: flag provided but not defined: -nope"}},
		{name: "help", args: []string{"-h"}, want: 2},
		{name: "prepare fails", prepareErr: errors.New("no broker"), want: 1, wantOut: []string{"t: no broker"}},
		{name: "run fails, still closed", run: func(context.Context) error { return errRun }, want: 1,
			wantOut: []string{"t: run broke"}, wantClosed: true},
		{name: "cleanup fails", run: func(context.Context) error { return nil }, closeErr: errClose, want: 1,
			wantOut: []string{"t: cleanup: close broke", "t: close broke"}, wantClosed: true},
		{name: "timeout named", args: []string{"-timeout", "10ms"}, want: 1, wantClosed: true,
			run:     func(ctx context.Context) error { <-ctx.Done(); return errors.New("draining: " + ctx.Err().Error()) },
			wantOut: []string{"the bench ran past -timeout 10ms"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			closed := false
			got := Main("t", tc.args, &stderr, parse, func(o opts) time.Duration { return o.timeout },
				func(context.Context, opts) (Bench, error) {
					if tc.prepareErr != nil {
						return Bench{}, tc.prepareErr
					}
					return Bench{Run: tc.run, Close: func() error { closed = true; return tc.closeErr }}, nil
				})
			if got != tc.want {
				t.Errorf("exit status %d, want %d; stderr:\n%s", got, tc.want, stderr.String())
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if closed != tc.wantClosed {
				t.Errorf("closed = %v, want %v", closed, tc.wantClosed)
			}
		})
	}
}
