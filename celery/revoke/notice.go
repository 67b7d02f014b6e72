package revoke

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Notice is what Revoke publishes on the store's channel:
//
//	{"ids": ["id", ...], "terminate": false, "signal": "", "expires": <unix ms>}
type Notice struct {
	IDs       []string
	Terminate bool
	// Signal is the signal name when Terminate is set, else "".
	Signal string
	// Expires is when the ids stop being revoked (millisecond precision).
	Expires time.Time
}

type noticeJSON struct {
	IDs       []string `json:"ids"`
	Terminate bool     `json:"terminate"`
	Signal    string   `json:"signal"`
	Expires   int64    `json:"expires"`
}

// EncodeNotice writes n as published on the channel.
func EncodeNotice(n Notice) ([]byte, error) {
	if err := n.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(noticeJSON{IDs: n.IDs, Terminate: n.Terminate, Signal: n.Signal, Expires: n.Expires.UnixMilli()})
}

// DecodeNotice reads a notice from the channel. It must be a JSON object with a non-empty list of
// non-empty string ids, a boolean terminate, a signal known to [ParseSignal] (or "" without
// terminate) and a positive expires; members must not be null, and unknown members are refused,
// so that a message from something else on the channel is reported, not half-read.
func DecodeNotice(data []byte) (Notice, error) {
	if !utf8.Valid(data) {
		return Notice{}, errors.New("revoke notice: not valid UTF-8")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil || raw == nil {
		return Notice{}, fmt.Errorf("revoke notice: not a JSON object: %.120q", data)
	}
	for _, k := range []string{"ids", "terminate", "signal", "expires"} {
		if v, ok := raw[k]; !ok || string(v) == "null" {
			return Notice{}, fmt.Errorf("revoke notice: missing %s: %.120q", k, data)
		}
	}
	if len(raw) != 4 {
		return Notice{}, fmt.Errorf("revoke notice: unexpected members: %.120q", data)
	}
	var j noticeJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return Notice{}, fmt.Errorf("revoke notice: %w: %.120q", err, data)
	}
	if dec.More() {
		return Notice{}, fmt.Errorf("revoke notice: trailing data: %.120q", data)
	}
	n := Notice{IDs: j.IDs, Terminate: j.Terminate, Signal: j.Signal, Expires: time.UnixMilli(j.Expires)}
	if j.Expires <= 0 {
		return Notice{}, fmt.Errorf("revoke notice: expires must be a positive unix time in ms, got %d", j.Expires)
	}
	if err := n.validate(); err != nil {
		return Notice{}, err
	}
	return n, nil
}

func (n Notice) validate() error {
	if len(n.IDs) == 0 {
		return errors.New("revoke notice: no ids")
	}
	for _, id := range n.IDs {
		if id == "" {
			return errors.New("revoke notice: empty task id")
		}
		if !utf8.ValidString(id) {
			return fmt.Errorf("revoke notice: task id %q is not valid UTF-8", id)
		}
	}
	if n.Terminate {
		if s, err := ParseSignal(n.Signal); err != nil || s != n.Signal {
			return fmt.Errorf("revoke notice: signal %q is not a signal name", n.Signal)
		}
	} else if n.Signal != "" {
		return fmt.Errorf("revoke notice: signal %q without terminate", n.Signal)
	}
	return nil
}
