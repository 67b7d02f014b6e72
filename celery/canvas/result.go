package canvas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/protocol"
)

// GroupResult is a group's result handle, Celery's GroupResult: the group id
// and its members' task ids in order.
type GroupResult struct {
	ID      string
	Results []string
}

// GroupKey is the Redis key of a saved GroupResult:
// prefix + "celery-taskset-meta-" + id.
func GroupKey(prefix, id string) string { return prefix + "celery-taskset-meta-" + id }

// Tuple returns the GroupResult as Celery's result tuple
// [[gid, null], [[[tid, null], null], ...]] (GroupResult.as_tuple), the shape
// stored by GroupResult.save and used in a parent's `children`.
func (g GroupResult) Tuple() json.RawMessage {
	b := []byte(`[[`)
	b = append(b, quote(g.ID)...)
	b = append(b, `, null], [`...)
	for i, id := range g.Results {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, TaskTuple(id)...)
	}
	return append(b, "]]"...)
}

// TaskTuple returns a task's result tuple [[id, null], null]
// (AsyncResult.as_tuple without a parent), one item of `children`.
func TaskTuple(id string) json.RawMessage { return protocol.TaskTuple(id) }

// MarshalGroupMeta returns the value GroupResult.save stores:
// {"result": <Tuple>}.
func (g GroupResult) MarshalGroupMeta() []byte {
	b := []byte(`{"result": `)
	b = append(b, g.Tuple()...)
	return append(b, '}')
}

// ParseGroupMeta decodes a saved GroupResult value. Nested groups and
// results with parents are not supported and are an error naming the member.
func ParseGroupMeta(data []byte) (GroupResult, error) {
	var v struct {
		Result []json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return GroupResult{}, fmt.Errorf("canvas: group meta: %w", err)
	}
	if len(v.Result) != 2 {
		return GroupResult{}, fmt.Errorf("canvas: group meta: result must be [[id, parent], members], got %d elements", len(v.Result))
	}
	var head []json.RawMessage
	if err := json.Unmarshal(v.Result[0], &head); err != nil || len(head) != 2 {
		return GroupResult{}, errors.New("canvas: group meta: result[0] must be [id, parent]")
	}
	var g GroupResult
	if err := json.Unmarshal(head[0], &g.ID); err != nil {
		return GroupResult{}, fmt.Errorf("canvas: group meta: group id: %w", err)
	}
	var members []json.RawMessage
	if err := json.Unmarshal(v.Result[1], &members); err != nil {
		return GroupResult{}, fmt.Errorf("canvas: group meta: members: %w", err)
	}
	g.Results = make([]string, 0, len(members))
	for i, m := range members {
		id, err := parseTaskTuple(m)
		if err != nil {
			return GroupResult{}, fmt.Errorf("canvas: group meta: member %d: %w", i, err)
		}
		g.Results = append(g.Results, id)
	}
	return g, nil
}

func parseTaskTuple(raw json.RawMessage) (string, error) {
	var t []json.RawMessage
	if err := json.Unmarshal(raw, &t); err != nil || len(t) != 2 {
		return "", errors.New("want [[id, parent], null]")
	}
	var idParent []json.RawMessage
	if err := json.Unmarshal(t[0], &idParent); err != nil || len(idParent) != 2 {
		return "", errors.New("nested groups are not supported")
	}
	var id string
	if err := json.Unmarshal(idParent[0], &id); err != nil {
		return "", fmt.Errorf("task id: %w", err)
	}
	return id, nil
}

// SaveGroup stores g in store, as Celery's GroupResult.save does (a Redis backend: SETEX with
// result_expires under GroupKey, and PUBLISH on the key's channel).
func SaveGroup(ctx context.Context, store backend.GroupStore, g GroupResult) error {
	if g.ID == "" {
		return errors.New("canvas: save group: empty group id")
	}
	if err := store.SaveGroup(ctx, g.ID, g.Results); err != nil {
		return fmt.Errorf("canvas: save group %s: %w", g.ID, err)
	}
	return nil
}

// ErrGroupNotFound is returned by RestoreGroup for a group that was never
// saved (or expired): [backend.ErrGroupNotFound].
var ErrGroupNotFound = backend.ErrGroupNotFound

// RestoreGroup reads a saved GroupResult from store (Celery's GroupResult.restore).
func RestoreGroup(ctx context.Context, store backend.GroupStore, id string) (GroupResult, error) {
	ids, err := store.RestoreGroup(ctx, id)
	if err != nil {
		if errors.Is(err, ErrGroupNotFound) {
			return GroupResult{}, err
		}
		return GroupResult{}, fmt.Errorf("canvas: restore group %s: %w", id, err)
	}
	return GroupResult{ID: id, Results: ids}, nil
}

// Children returns the `children` value of a parent task's result meta for
// what it started: a task tuple per single task, a group tuple per group, as
// Celery 5.2 stores request.children. No children is [].
func Children(results ...Result) json.RawMessage {
	items := make([]json.RawMessage, 0, len(results))
	for _, r := range results {
		if r.Group != nil {
			items = append(items, r.Group.Tuple())
		} else {
			items = append(items, TaskTuple(r.ID))
		}
	}
	return joinList(items)
}

// Wait waits for every member of g and returns their results in order,
// as Python's GroupResult.get() does; the first failure is returned as its
// error. get is usually celery.NewAsyncResult(id, backend).Get.
func (g GroupResult) Wait(ctx context.Context, get func(ctx context.Context, id string) (json.RawMessage, error)) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, len(g.Results))
	for i, id := range g.Results {
		v, err := get(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("canvas: group %s member %d (%s): %w", g.ID, i, id, err)
		}
		out[i] = v
	}
	return out, nil
}
