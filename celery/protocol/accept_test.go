package protocol

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestAccept(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		list    []string // nil: the zero Accept
		allowed []string
		refused []string
	}{
		{"zero value is json only", nil,
			[]string{ContentTypeJSON, "", ContentTypeData, ContentTypeText},
			[]string{ContentTypeYAML, ContentTypeMsgpack, ContentTypePickle, "application/x-custom"}},
		{"names", []string{"json", "msgpack"},
			[]string{ContentTypeJSON, ContentTypeMsgpack},
			[]string{ContentTypeYAML, ContentTypePickle}},
		{"MIME types and duplicates", []string{"application/x-yaml", "yaml", "application/x-custom"},
			[]string{ContentTypeYAML, "application/x-custom"},
			[]string{ContentTypeJSON}},
		{"empty list accepts raw data only", []string{},
			[]string{"", ContentTypeData},
			[]string{ContentTypeJSON}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var a Accept
			if tc.list != nil {
				var err error
				if a, err = NewAccept(tc.list); err != nil {
					t.Fatal(err)
				}
			}
			for _, ct := range tc.allowed {
				if !a.Allows(ct) {
					t.Errorf("Allows(%q) = false", ct)
				}
			}
			for _, ct := range tc.refused {
				if a.Allows(ct) {
					t.Errorf("Allows(%q) = true", ct)
				}
			}
		})
	}
}

func TestNewAcceptErrors(t *testing.T) {
	t.Parallel()
	for _, list := range [][]string{{"pickle"}, {"json", ContentTypePickle}, {"xml"}, {"JSON"}} {
		if _, err := NewAccept(list); err == nil {
			t.Errorf("NewAccept(%q): want an error", list)
		}
	}
}

func TestMessageError(t *testing.T) {
	t.Parallel()
	cause := errors.New("boom")
	tests := []struct {
		err  *MessageError
		want string
	}{
		{&MessageError{Kind: ErrContentDisallowed, Reason: "r", TaskID: "i", TaskName: "n"}, "protocol: content disallowed: r (task n id i)"},
		{&MessageError{Kind: ErrUndecodable, TaskID: "i", Err: cause}, "protocol: undecodable message (task id i): boom"},
		{&MessageError{Kind: ErrInvalidTask, TaskName: "n"}, "protocol: invalid task message (task n)"},
		{&MessageError{Kind: ErrUnknownMessage, Reason: "r"}, "protocol: unknown message: r"},
		{&MessageError{}, "protocol: unknown error kind"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	wrapped := fmt.Errorf("consumer: %w", &MessageError{Kind: ErrInvalidTask, Err: cause})
	if !errors.Is(wrapped, ErrInvalidTask) || errors.Is(wrapped, ErrUndecodable) || !errors.Is(wrapped, cause) {
		t.Error("errors.Is does not see through the wrapping")
	}
	var me *MessageError
	if !errors.As(wrapped, &me) || me.Kind != ErrInvalidTask {
		t.Error("errors.As failed")
	}
	for _, k := range []ErrorKind{ErrContentDisallowed, ErrUndecodable, ErrInvalidTask, ErrUnknownMessage} {
		if strings.Contains(k.Error(), "unknown error kind") {
			t.Errorf("kind %d has no description", k)
		}
	}
}
