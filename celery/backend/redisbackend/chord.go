package redisbackend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/protocol"
)

// GroupKey returns the key of a saved GroupResult: prefix +
// "celery-taskset-meta-" + id. The chord counter keys are GroupKey + ".j"
// (the results, a sorted set), ".t" (members added at runtime) and ".s" (the
// chord size the client stored).
func GroupKey(prefix, id string) string {
	return prefix + "celery-taskset-meta-" + id
}

// ChordError is the failure of a chord; see [backend.ChordError].
type ChordError = backend.ChordError

// ChordPart is one finished chord header member, as a worker reports it; see [backend.ChordPart].
type ChordPart = backend.ChordPart

// ChordOutcome is what OnChordPartReturn did; see [backend.ChordOutcome].
type ChordOutcome = backend.ChordOutcome

// SetChordSize stores the chord header size under GroupKey(gid)+".s", as a
// Celery 5.2 client does right before publishing the last header task:
// SETEX with result_expires (SET when there is no expiry) and PUBLISH on the
// key's channel. It implements backend.ChordSizer.
func (b *Backend) SetChordSize(ctx context.Context, gid string, size int) error {
	if gid == "" {
		return errors.New("redisbackend: set chord size: empty group id")
	}
	if size < 0 {
		return fmt.Errorf("redisbackend: set chord size of group %s: negative size %d", gid, size)
	}
	key := GroupKey(b.prefix, gid) + ".s"
	val := strconv.Itoa(size)
	if err := b.setAndPublish(ctx, key, val); err != nil {
		return fmt.Errorf("redisbackend: set chord size of group %s: %w", gid, err)
	}
	return nil
}

// AddToChord counts one more part for the chord of group gid, as Celery 5.2's
// RedisBackend.add_to_chord does for Task.add_to_chord: INCR GroupKey(gid)+".t" (the members
// added at runtime, which OnChordPartReturn adds to the stored size).
func (b *Backend) AddToChord(ctx context.Context, gid string) error {
	if gid == "" {
		return errors.New("redisbackend: add to chord: empty group id")
	}
	if err := b.client.Incr(ctx, GroupKey(b.prefix, gid)+".t").Err(); err != nil {
		return fmt.Errorf("redisbackend: add to chord %s: %w", gid, err)
	}
	return nil
}

// OnChordPartReturn is Celery 5.2's RedisBackend.on_chord_part_return for a
// finished chord header member. In one MULTI it runs ZADD .j
// {json([1, tid, state, result]): group_index or +inf}, ZCOUNT .j -inf +inf,
// GET .t, GET .s and (with result_expires) EXPIRE .j/.t/.s. Without a stored
// size nothing more happens. When the count reaches size + .t, it GETs the
// saved GroupResult (Celery's GroupResult.restore), reads ZRANGE .j 0 -1,
// decodes the results in group order and DELs .j .t .s, and reports
// Complete. A member in FAILURE or REVOKED makes the outcome's Err
// "Dependency <tid> raised <repr>". The returned error is a Redis or
// argument problem, never the chord's failure.
func (b *Backend) OnChordPartReturn(ctx context.Context, part ChordPart) (ChordOutcome, error) {
	if part.GroupID == "" || part.TaskID == "" {
		return ChordOutcome{}, fmt.Errorf("redisbackend: chord part: group id %q and task id %q must both be set", part.GroupID, part.TaskID)
	}
	if part.State == "" {
		return ChordOutcome{}, fmt.Errorf("redisbackend: chord part %s: empty state", part.TaskID)
	}
	result := part.Result
	if len(result) == 0 {
		result = json.RawMessage("null")
	}
	encoded, err := protocol.PyJSON([]any{1, part.TaskID, part.State, result})
	if err != nil {
		return ChordOutcome{}, fmt.Errorf("redisbackend: chord part %s: encode result: %w", part.TaskID, err)
	}
	gkey := GroupKey(b.prefix, part.GroupID)
	jkey, tkey, skey := gkey+".j", gkey+".t", gkey+".s"
	score := "+inf" // as Celery sends a missing group_index
	if part.GroupIndex != nil {
		score = strconv.Itoa(*part.GroupIndex)
	}
	var storeKey string
	var storeVal []byte
	if part.Store != nil {
		if storeKey, storeVal, err = b.encode(*part.Store); err != nil {
			return ChordOutcome{}, &StoreError{TaskID: part.Store.TaskID, Err: err}
		}
	}
	pp := &pendingPart{jkey: jkey, tkey: tkey, skey: skey, score: score, member: string(encoded),
		storeKey: storeKey, storeVal: storeVal}
	if err := b.parts.do(ctx, pp); err != nil {
		return ChordOutcome{}, fmt.Errorf("redisbackend: chord part %s of group %s: %w", part.TaskID, part.GroupID, err)
	}
	count, total, size, stored := pp.count, pp.total, pp.size, pp.stored
	if stored != nil && redis.HasErrorPrefix(stored.Err(), "NOSCRIPT") {
		// The script cache was empty: that command alone did nothing (the part was counted).
		// Store with the script's source, as Store does.
		n, serr := storeScript.Run(ctx, b.client, []string{storeKey}, storeVal, b.ttl).Int64()
		if serr = storeOutcome(part.Store.TaskID, n, serr); serr != nil && !errors.Is(serr, ErrAlreadySucceeded) {
			return ChordOutcome{}, fmt.Errorf("redisbackend: chord part %s: store: %w", part.TaskID, serr)
		}
	} else if stored != nil {
		if serr := stored.Err(); serr != nil {
			return ChordOutcome{}, fmt.Errorf("redisbackend: chord part %s: store: %w", part.TaskID, serr)
		}
	}
	for _, c := range []redis.Cmder{count, total, size} {
		if cerr := c.Err(); cerr != nil && !errors.Is(cerr, redis.Nil) {
			return ChordOutcome{}, fmt.Errorf("redisbackend: chord part %s of group %s: %w", part.TaskID, part.GroupID, cerr)
		}
	}
	sizeText, err := size.Result()
	if errors.Is(err, redis.Nil) || sizeText == "" {
		return ChordOutcome{}, nil
	}
	if err != nil {
		return ChordOutcome{}, fmt.Errorf("redisbackend: chord %s: read size: %w", part.GroupID, err)
	}
	n, err := strconv.ParseInt(sizeText, 10, 64)
	if err != nil {
		return ChordOutcome{}, fmt.Errorf("redisbackend: chord %s: size %q is not an integer", part.GroupID, sizeText)
	}
	var extra int64
	if t, err := total.Result(); err == nil && t != "" {
		if extra, err = strconv.ParseInt(t, 10, 64); err != nil {
			return ChordOutcome{}, fmt.Errorf("redisbackend: chord %s: .t value %q is not an integer", part.GroupID, t)
		}
	}
	if count.Val() != n+extra {
		return ChordOutcome{}, nil
	}
	out := ChordOutcome{Complete: true}
	// Celery first tries GroupResult.restore(gid): a saved GroupResult
	// (a header with nested groups) is joined instead of the .j entries.
	saved, err := b.client.Get(ctx, gkey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return ChordOutcome{}, fmt.Errorf("redisbackend: chord %s: restore group: %w", part.GroupID, err)
	}
	var entries []string
	if saved == "" {
		if entries, err = b.client.ZRange(ctx, jkey, 0, -1).Result(); err != nil {
			return ChordOutcome{}, fmt.Errorf("redisbackend: chord %s: read results: %w", part.GroupID, err)
		}
		out.Results, out.Err = decodeChordEntries(entries)
	} else {
		out.Results, out.Err = b.joinSaved(ctx, saved)
	}
	_, err = b.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range []string{jkey, tkey, skey} {
			p.Del(ctx, k)
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("redisbackend: chord %s: delete counter keys: %w", part.GroupID, err)
	}
	return out, nil
}

// decodeChordEntries unpacks the .j entries as Celery's
// _unpack_chord_result does, stopping at the first failed member.
func decodeChordEntries(entries []string) ([]json.RawMessage, *ChordError) {
	results := make([]json.RawMessage, 0, len(entries))
	for _, e := range entries {
		tid, state, val, err := DecodeChordEntry([]byte(e))
		if err != nil {
			return nil, &ChordError{Message: "Join error: " + err.Error()}
		}
		if state == protocol.StateFailure || state == protocol.StateRevoked {
			return nil, backend.DependencyError(tid, val)
		}
		results = append(results, val)
	}
	return results, nil
}

// DecodeChordEntry decodes one .j member, the JSON [1, task_id, state,
// result].
func DecodeChordEntry(data []byte) (taskID, state string, result json.RawMessage, err error) {
	if !utf8.Valid(data) {
		return "", "", nil, fmt.Errorf("chord entry %.60q: invalid UTF-8", data)
	}
	var tup []json.RawMessage
	if err := json.Unmarshal(data, &tup); err != nil {
		return "", "", nil, fmt.Errorf("chord entry %.60q: %w", data, err)
	}
	if len(tup) != 4 {
		return "", "", nil, fmt.Errorf("chord entry %.60q: want 4 elements, got %d", data, len(tup))
	}
	if err := json.Unmarshal(tup[1], &taskID); err != nil {
		return "", "", nil, fmt.Errorf("chord entry %.60q: task id: %w", data, err)
	}
	if err := json.Unmarshal(tup[2], &state); err != nil {
		return "", "", nil, fmt.Errorf("chord entry %.60q: state: %w", data, err)
	}
	return taskID, state, tup[3], nil
}

// joinSaved joins a saved GroupResult as Celery's join_native does: each member's stored
// result in order, a nested group (what Celery's client saves for a header whose chain member
// ends in a group) as the list of its members' results.
func (b *Backend) joinSaved(ctx context.Context, saved string) ([]json.RawMessage, *ChordError) {
	members, err := decodeGroupTree([]byte(saved))
	if err != nil {
		return nil, &ChordError{Message: "Join error: " + err.Error()}
	}
	return b.joinMembers(ctx, members)
}

func (b *Backend) joinMembers(ctx context.Context, members []groupMember) ([]json.RawMessage, *ChordError) {
	results := make([]json.RawMessage, 0, len(members))
	for _, m := range members {
		if m.group {
			sub, cerr := b.joinMembers(ctx, m.members)
			if cerr != nil {
				return nil, cerr
			}
			list := []byte{'['}
			for i, r := range sub {
				if i > 0 {
					list = append(list, ", "...)
				}
				list = append(list, r...)
			}
			results = append(results, append(list, ']'))
			continue
		}
		meta, err := b.Get(ctx, m.id)
		if err != nil {
			return nil, &ChordError{Message: "Join error: " + err.Error()}
		}
		if meta.Status == protocol.StateFailure || meta.Status == protocol.StateRevoked {
			return nil, backend.DependencyError(m.id, meta.Result)
		}
		if meta.Status != protocol.StateSuccess {
			return nil, &ChordError{Message: fmt.Sprintf("Join error: member %s is %s", m.id, meta.Status)}
		}
		results = append(results, meta.Result)
	}
	return results, nil
}

// groupMember is one member of a saved GroupResult: a task result, or a nested group.
type groupMember struct {
	id      string
	group   bool
	members []groupMember
}

// maxGroupDepth bounds the nesting of saved groups decoded (a corrupt value cannot exhaust the stack).
const maxGroupDepth = 32

// decodeGroupTree returns the members of a saved GroupResult value {"result": <as_tuple>}, where
// a member is [[id, parent], null] (a task) or [[id, parent], [members...]] (a nested group).
func decodeGroupTree(data []byte) ([]groupMember, error) {
	var v struct {
		Result []json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("group meta: %w", err)
	}
	if len(v.Result) != 2 {
		return nil, fmt.Errorf("group meta: result must be [[gid, parent], members], got %d elements", len(v.Result))
	}
	return decodeGroupMembers(v.Result[1], 0)
}

func decodeGroupMembers(raw json.RawMessage, depth int) ([]groupMember, error) {
	if depth > maxGroupDepth {
		return nil, fmt.Errorf("group meta: groups nested deeper than %d", maxGroupDepth)
	}
	var members [][]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return nil, fmt.Errorf("group meta: members: %w", err)
	}
	out := make([]groupMember, 0, len(members))
	for i, m := range members {
		if len(m) != 2 {
			return nil, fmt.Errorf("group meta: member %d: want [[id, parent], null or members]", i)
		}
		var idParent []json.RawMessage
		if err := json.Unmarshal(m[0], &idParent); err != nil || len(idParent) != 2 {
			return nil, fmt.Errorf("group meta: member %d: want [id, parent] first", i)
		}
		var gm groupMember
		if err := json.Unmarshal(idParent[0], &gm.id); err != nil {
			return nil, fmt.Errorf("group meta: member %d: id: %w", i, err)
		}
		if !isJSONNull(m[1]) {
			sub, err := decodeGroupMembers(m[1], depth+1)
			if err != nil {
				return nil, fmt.Errorf("group meta: member %d: %w", i, err)
			}
			gm.group, gm.members = true, sub
		}
		out = append(out, gm)
	}
	return out, nil
}

func isJSONNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// DecodeGroupMeta returns the member task ids of a saved, flat GroupResult value
// {"result": [[gid, null], [[[tid, null], null], ...]]}. A nested group is an error naming the
// member (the chord join reads those itself).
func DecodeGroupMeta(data []byte) ([]string, error) {
	members, err := decodeGroupTree(data)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(members))
	for i, m := range members {
		if m.group {
			return nil, fmt.Errorf("group meta: member %d: nested groups are not supported", i)
		}
		ids = append(ids, m.id)
	}
	return ids, nil
}

// secondsDuration turns the backend's TTL in seconds into a time.Duration.
func secondsDuration(s int64) time.Duration { return time.Duration(s) * time.Second }
