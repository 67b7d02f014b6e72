package canvas

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/protocol"
)

// Route is where a message goes, from its signature's options (queue,
// exchange, routing_key, priority). Empty fields are resolved by the
// publisher with the client's rules (task_routes, task_default_queue).
type Route struct {
	Queue      string
	Exchange   string
	RoutingKey string
	Priority   *int
}

// ChordSize asks the publisher to store a chord's header size (the
// celery-taskset-meta-<GroupID>.s key) before publishing the message that
// carries it: the last header task, as Celery's client does.
type ChordSize struct {
	GroupID string
	Size    int
}

// Outgoing is one task message to publish.
type Outgoing struct {
	Msg   *protocol.TaskMessage
	Route Route
	// Countdown is the countdown option, in seconds; the publisher sets
	// Msg.ETA from it (Msg.ETA already set wins).
	Countdown *float64
	// ExpiresIn is a numeric expires option, in seconds from publishing.
	ExpiresIn *float64
	// ChordSize, when set, is stored before Msg is published.
	ChordSize *ChordSize
}

// Result describes what applying a signature started, as Celery's
// apply_async returns it: the id whose result is the workflow's result
// (a chain's last task, a chord's body), and for a group its GroupResult.
type Result struct {
	// ID is the task id of the result (for a group: the group id).
	ID string
	// Group is set when the signature was a group.
	Group *GroupResult
	// Parent is the result of the previous step of a chain, or a chord's
	// header group, if any.
	Parent *Result
}

// Applier builds the messages for signatures. Origin and ReplyTo are the
// origin header and reply_to property of what it builds (a signature's
// reply_to option wins); NewID makes task and group ids (nil: random
// UUID4s).
type Applier struct {
	Origin  string
	ReplyTo string
	NewID   func() string
	// Now is the clock for eta options given as datetimes (nil: time.Now).
	Now func() time.Time
	// RequestErrback reports whether an errback task is a "new-style" one, taking (request, exc,
	// traceback) (nil: none is). See [Applier.Errbacks].
	RequestErrback func(task string) bool
}

// Incoming is the context a signature is applied in: what the caller adds
// to it (a parent's result, the workflow ids, the enclosing group or chord).
type Incoming struct {
	// Args are prepended to the signature's args (unless it is immutable).
	Args []json.RawMessage
	// Kwargs are merged over the signature's kwargs.
	Kwargs map[string]json.RawMessage
	// ParentID and RootID are the workflow ids ("" = none; root defaults to
	// the task's own id).
	ParentID, RootID string
	// GroupID and GroupIndex set the group headers.
	GroupID    string
	GroupIndex *int
	// Chain is the rest of a chain (reversed: the last element runs next).
	Chain []protocol.Signature
	// Chord is the chord body for a header member.
	Chord *protocol.Signature
}

func (a *Applier) newID() string {
	if a.NewID != nil {
		return a.NewID()
	}
	return celery.NewID()
}

// Freeze returns a copy of sig with ids assigned as Celery's freeze does:
// options.task_id (and reply_to) on a task; on a chain every step; on a
// group every member (the group id is the group's task_id option); on a
// chord the header group and the body.
func (a *Applier) Freeze(sig Signature) (Signature, error) {
	if sig.err != nil {
		return Signature{}, sig.err
	}
	c := sig.clone()
	switch sig.SubtaskType {
	case TypeChain, TypeGroup:
		tasks, err := c.Tasks()
		if err != nil {
			return Signature{}, err
		}
		for i := range tasks {
			if tasks[i], err = a.Freeze(tasks[i]); err != nil {
				return Signature{}, err
			}
		}
		c.setTasks(tasks)
		if sig.SubtaskType == TypeGroup && c.ID() == "" {
			c.setRaw("task_id", quote(a.newID()))
		}
		return c, nil
	case TypeChord:
		h, err := c.ChordHeader()
		if err != nil {
			return Signature{}, err
		}
		b, err := c.ChordBody()
		if err != nil {
			return Signature{}, err
		}
		if h, err = a.Freeze(h); err != nil {
			return Signature{}, err
		}
		// Python's chord: its task_id option is the body's id, its other
		// options go to the body.
		for _, k := range c.OptionsOrder {
			if k == "task_id" {
				if b.ID() == "" {
					b = b.clone()
					b.setRaw("task_id", c.Options[k])
				}
				continue
			}
			if _, ok := b.Options[k]; !ok {
				b = b.clone()
				b.setRaw(k, c.Options[k])
			}
		}
		if b, err = a.Freeze(b); err != nil {
			return Signature{}, err
		}
		c.setHeader(mustJSON(h), h)
		c.setKwarg("body", mustJSON(b))
		return c, nil
	case "":
		if c.ID() == "" {
			c.setRaw("task_id", quote(a.newID()))
		}
		if _, ok := c.Options["reply_to"]; !ok && a.ReplyTo != "" {
			c.setRaw("reply_to", quote(a.ReplyTo))
		}
		return c, nil
	}
	return Signature{}, fmt.Errorf("canvas: %s: subtask_type %q is not supported", sig.Task, sig.SubtaskType)
}

func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// Apply returns the messages Celery's client publishes for sig.apply_async()
// in the context in, in publishing order, and the Result handle.
//
//   - task: one message; args = in.Args + sig.args (unless immutable),
//     embed callbacks/errbacks from options link/link_error.
//   - chain: nested chains are flattened and a group followed by a task
//     becomes a chord (Celery's upgrade); only the first step is published,
//     with embed.chain = the other steps reversed.
//   - group: one message per member with the group header (group_index only
//     inside a chord).
//   - chord: the header members with group, group_index and embed.chord =
//     the body, the last one carrying ChordSize; an empty header publishes
//     the body at once with args [[]].
func (a *Applier) Apply(sig Signature, in Incoming) ([]Outgoing, Result, error) {
	if sig.err != nil {
		return nil, Result{}, sig.err
	}
	switch sig.SubtaskType {
	case "":
		o, err := a.applyTask(sig, in)
		if err != nil {
			return nil, Result{}, err
		}
		return []Outgoing{o}, Result{ID: o.Msg.ID}, nil
	case TypeChain:
		return a.applyChain(sig, in)
	case TypeGroup:
		return a.applyGroup(sig, in, false)
	case TypeChord:
		return a.applyChord(sig, in)
	}
	return nil, Result{}, fmt.Errorf("canvas: %s: subtask_type %q is not supported", sig.Task, sig.SubtaskType)
}

func (a *Applier) applyTask(sig Signature, in Incoming) (Outgoing, error) {
	if sig.Task == "" {
		return Outgoing{}, errors.New("canvas: signature with an empty task name")
	}
	sig, err := a.Freeze(sig)
	if err != nil {
		return Outgoing{}, err
	}
	msg := &protocol.TaskMessage{Protocol: 2, ID: sig.ID(), Task: sig.Task, Origin: a.Origin, UTC: true}
	if !sig.Immutable {
		msg.Args = append(slices.Clone(in.Args), sig.Args...)
	} else {
		msg.Args = slices.Clone(sig.Args)
	}
	if msg.Args == nil {
		msg.Args = []json.RawMessage{}
	}
	msg.Kwargs = map[string]json.RawMessage{}
	msg.KwargsOrder = slices.Clone(sig.KwargsOrder)
	for k, v := range sig.Kwargs {
		msg.Kwargs[k] = v
	}
	for k, v := range in.Kwargs {
		if _, ok := msg.Kwargs[k]; !ok {
			msg.KwargsOrder = append(msg.KwargsOrder, k)
		}
		msg.Kwargs[k] = v
	}
	str := func(key string, dst *string) {
		if err != nil {
			return
		}
		var v string
		v, err = sig.stringOption(key)
		if v != "" {
			*dst = v
		}
	}
	msg.ReplyTo = a.ReplyTo
	str("reply_to", &msg.ReplyTo)
	str("shadow", &msg.Shadow)
	str("root_id", &msg.RootID)
	str("parent_id", &msg.ParentID)
	str("group_id", &msg.GroupID)
	if err != nil {
		return Outgoing{}, err
	}
	if in.RootID != "" {
		msg.RootID = in.RootID
	}
	if msg.RootID == "" {
		msg.RootID = msg.ID
	}
	if in.ParentID != "" {
		msg.ParentID = in.ParentID
	}
	if in.GroupID != "" && msg.GroupID == "" {
		// As Celery's Signature._merge keeps group_id (its _IMMUTABLE_OPTIONS): a member frozen
		// into a chord's group stays counted there when a group of its own is applied later.
		msg.GroupID = in.GroupID
	}
	var gi int
	if ok, err := sig.option("group_index", &gi); err != nil {
		return Outgoing{}, err
	} else if ok {
		msg.GroupIndex = &gi
	}
	if in.GroupIndex != nil {
		msg.GroupIndex = in.GroupIndex
	}
	if _, err := sig.option("ignore_result", &msg.IgnoreResult); err != nil {
		return Outgoing{}, err
	}
	var retries int
	if _, err := sig.option("retries", &retries); err != nil {
		return Outgoing{}, err
	}
	msg.Retries = retries
	var hard, soft float64
	if ok, err := sig.option("time_limit", &hard); err != nil {
		return Outgoing{}, err
	} else if ok {
		msg.TimeLimit.Hard = &hard
	}
	if ok, err := sig.option("soft_time_limit", &soft); err != nil {
		return Outgoing{}, err
	} else if ok {
		msg.TimeLimit.Soft = &soft
	}
	var headers map[string]any
	if _, err := sig.option("headers", &headers); err != nil {
		return Outgoing{}, err
	}
	msg.ExtraHeaders = headers
	if msg.Embed.Callbacks, err = sig.signatureList("link"); err != nil {
		return Outgoing{}, err
	}
	if msg.Embed.Errbacks, err = sig.signatureList("link_error"); err != nil {
		return Outgoing{}, err
	}
	msg.Embed.Chain = in.Chain
	if in.Chain == nil {
		// A chain option (what Celery's chord.run leaves on a chord body followed by more steps)
		// is the rest of a chain, sent as embed.chain as apply_async(chain=...) does.
		if msg.Embed.Chain, err = sig.signatureList("chain"); err != nil {
			return Outgoing{}, err
		}
	}
	msg.Embed.Chord = in.Chord
	if in.Chord == nil {
		if raw, ok := sig.Options["chord"]; ok && !isNull(raw) {
			body, err := Decode(raw)
			if err != nil {
				return Outgoing{}, fmt.Errorf("canvas: %s: option chord: %w", sig.Task, err)
			}
			msg.Embed.Chord = &body.Signature
		}
	}
	out := Outgoing{Msg: msg}
	if err := a.timeOptions(sig, &out); err != nil {
		return Outgoing{}, err
	}
	str("queue", &out.Route.Queue)
	str("exchange", &out.Route.Exchange)
	str("routing_key", &out.Route.RoutingKey)
	if err != nil {
		return Outgoing{}, err
	}
	var prio int
	if ok, err := sig.option("priority", &prio); err != nil {
		return Outgoing{}, err
	} else if ok {
		out.Route.Priority = &prio
	}
	return out, nil
}

// timeOptions reads countdown, eta and expires.
func (a *Applier) timeOptions(sig Signature, out *Outgoing) error {
	var cd float64
	if ok, err := sig.option("countdown", &cd); err != nil {
		return err
	} else if ok {
		out.Countdown = &cd
	}
	if raw, ok := sig.Options["eta"]; ok && !isNull(raw) {
		t, err := parseTimeOption(raw)
		if err != nil {
			return fmt.Errorf("canvas: %s: option eta: %w", sig.Task, err)
		}
		out.Msg.ETA = &t
	}
	if raw, ok := sig.Options["expires"]; ok && !isNull(raw) {
		var secs float64
		if json.Unmarshal(raw, &secs) == nil {
			out.ExpiresIn = &secs
		} else {
			t, err := parseTimeOption(raw)
			if err != nil {
				return fmt.Errorf("canvas: %s: option expires: %w", sig.Task, err)
			}
			out.Msg.Expires = &t
		}
	}
	return nil
}

func parseTimeOption(raw json.RawMessage) (time.Time, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, fmt.Errorf("%s is neither a number of seconds nor an ISO 8601 string", raw)
	}
	t, err := protocol.ParseTime(s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}
