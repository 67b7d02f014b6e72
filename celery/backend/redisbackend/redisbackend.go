// Package redisbackend is Celery's Redis result backend: it stores task
// results where Python's AsyncResult reads them and wakes Python clients
// waiting in AsyncResult.get().
//
// # Wire format
//
// A result lives under the key celery-task-meta-<task id> as the JSON text of
// a [protocol.ResultMeta], written byte for byte as Celery 5.2 writes it. Each
// write also PUBLISHes the same text on a channel named like the key; that is
// what wakes a waiting client. Like Celery, a stored SUCCESS is never
// overwritten, so a task that runs twice cannot replace its first result.
//
// # Differences from Celery 5.2
//
// The check for a stored SUCCESS and the write happen in one Lua script, so
// they are atomic (Celery does a GET, then a MULTI). Options.KeyPrefix has no
// 5.2 equivalent; 5.3's global_keyprefix "p" corresponds to KeyPrefix "p_".
package redisbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/protocol"
)

// ErrAlreadySucceeded is the error Store wraps when it did not write because
// a SUCCESS result is already stored for the task: [backend.ErrAlreadySucceeded].
// Celery ignores such a write silently; callers usually do the same with errors.Is.
var ErrAlreadySucceeded = backend.ErrAlreadySucceeded

// ErrInvalidMeta is the error Store wraps for a meta without a task id or a
// status: [backend.ErrInvalidMeta].
var ErrInvalidMeta = backend.ErrInvalidMeta

// ErrValueTooLarge is the error Store wraps when the encoded meta exceeds
// Redis's 512 MiB string limit, as Celery's BackendStoreError does.
var ErrValueTooLarge = errors.New("redisbackend: value too large for Redis backend")

// ErrSubscriptionClosed is returned by Wait when the Redis subscription ends
// before a ready state arrives.
var ErrSubscriptionClosed = errors.New("redisbackend: subscription closed")

// maxValueSize is Redis's largest string value, Celery's
// _MAX_STR_VALUE_SIZE.
const maxValueSize = 512 << 20

// StoreError is the error Store and StoreMany return for one task's meta.
type StoreError struct {
	// TaskID is the meta's task id.
	TaskID string
	// Err is the cause: ErrAlreadySucceeded, ErrInvalidMeta,
	// ErrValueTooLarge, an encoding error or a Redis error.
	Err error
}

// Error implements error.
func (e *StoreError) Error() string {
	return fmt.Sprintf("redisbackend: store result of task %q: %v", e.TaskID, e.Err)
}

// Unwrap returns e.Err.
func (e *StoreError) Unwrap() error { return e.Err }

// Temporary reports whether storing again may succeed: true for Redis and network errors, false
// when the meta itself was refused (already SUCCESS, invalid, too large, not encodable).
func (e *StoreError) Temporary() bool {
	switch {
	case errors.Is(e.Err, ErrAlreadySucceeded), errors.Is(e.Err, ErrInvalidMeta), errors.Is(e.Err, ErrValueTooLarge):
		return false
	}
	var me *json.MarshalerError
	var ue *json.UnsupportedValueError
	var ut *json.UnsupportedTypeError
	return !errors.As(e.Err, &me) && !errors.As(e.Err, &ue) && !errors.As(e.Err, &ut)
}

// Options configures a Backend. The zero value stores results forever under
// Celery 5.2's key names.
type Options struct {
	// Expires is result_expires: the TTL of every stored result, in whole
	// seconds (a positive value below one second counts as one). Zero or
	// less stores without a TTL (plain SET). Celery's default is 24h; the
	// caller passes it.
	Expires time.Duration
	// KeyPrefix is prepended to every key and channel name. Celery 5.2 has
	// none, so it must stay empty to interoperate with Python 5.2.
	KeyPrefix string
}

// Backend reads and writes task results in Redis. It is safe for concurrent
// use. It implements [backend.ResultBackend], [backend.ChordStore] and
// [backend.GroupStore].
type Backend struct {
	client  redis.UniversalClient
	prefix  string
	ttl     int64 // seconds; 0 means no TTL
	now     func() time.Time
	maxSize int
	parts   *groupCommit[*pendingPart]  // chord parts counted together (OnChordPartReturn)
	stores  *groupCommit[*pendingStore] // concurrent Stores written together

	// afterInitialGet, when set by tests, runs in Wait after the GET that
	// follows SUBSCRIBE.
	afterInitialGet func()
}

// New returns a Backend that uses client. The client is not closed by the
// Backend.
func New(client redis.UniversalClient, opts Options) *Backend {
	var ttl int64
	if opts.Expires > 0 {
		ttl = int64(opts.Expires / time.Second)
		if ttl == 0 {
			ttl = 1
		}
	}
	b := &Backend{client: client, prefix: opts.KeyPrefix, ttl: ttl, now: time.Now, maxSize: maxValueSize}
	b.parts = &groupCommit[*pendingPart]{max: maxPartBatch, exec: b.execParts}
	b.stores = &groupCommit[*pendingStore]{max: maxStoreBatch, exec: b.execStores}
	return b
}

// TaskKey returns the key (and channel) of a task's result:
// prefix + "celery-task-meta-" + id.
func TaskKey(prefix, id string) string {
	return prefix + "celery-task-meta-" + id
}

// storeScript writes ARGV[1] to KEYS[1] and publishes it on the channel of
// the same name, unless the stored value has status SUCCESS. ARGV[2] is the
// TTL in seconds, 0 for none. It returns 1 when written, 0 when not. A value
// that is not JSON (or is nested too deep for cjson) counts as SUCCESS only
// if it starts the way Celery and this package write a SUCCESS.
var storeScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, meta = pcall(cjson.decode, cur)
  if ok then
    if type(meta) == 'table' and meta['status'] == 'SUCCESS' then
      return 0
    end
  elseif string.find(cur, '^%s*{%s*"status"%s*:%s*"SUCCESS"') then
    return 0
  end
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SETEX', KEYS[1], ttl, ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
`)

// encode checks meta and returns its key and value. A ready state without
// DateDone gets the current time, as Celery stamps date_done when storing.
func (b *Backend) encode(meta protocol.ResultMeta) (string, []byte, error) {
	if meta.TaskID == "" {
		return "", nil, fmt.Errorf("%w: empty task id", ErrInvalidMeta)
	}
	if meta.Status == "" {
		return "", nil, fmt.Errorf("%w: empty status", ErrInvalidMeta)
	}
	if meta.DateDone == nil && protocol.IsReady(meta.Status) {
		now := b.now().UTC()
		meta.DateDone = &now
	}
	val, err := meta.MarshalJSON()
	if err != nil {
		return "", nil, err
	}
	if len(val) > b.maxSize {
		return "", nil, ErrValueTooLarge
	}
	return TaskKey(b.prefix, meta.TaskID), val, nil
}

// Store writes meta under its task's key and publishes it, atomically (one
// script), unless a SUCCESS result is already stored: then nothing is
// written and the error wraps ErrAlreadySucceeded. It returns once Redis
// has answered; the results of concurrent Stores share one pipelined round
// trip. Any state is stored as
// given (STARTED, RETRY, custom states with their meta as the result). A
// ready state without DateDone gets the current time. Errors are
// *StoreError.
func (b *Backend) Store(ctx context.Context, meta protocol.ResultMeta) error {
	key, val, err := b.encode(meta)
	if err != nil {
		return &StoreError{TaskID: meta.TaskID, Err: err}
	}
	p := &pendingStore{key: key, val: val}
	if err := b.stores.do(ctx, p); err != nil {
		return &StoreError{TaskID: meta.TaskID, Err: err}
	}
	return storeOutcome(meta.TaskID, p.n, p.err)
}

// storeOutcome turns the script's reply into Store's error.
func storeOutcome(id string, n int64, err error) error {
	switch {
	case err != nil:
		return &StoreError{TaskID: id, Err: err}
	case n == 0:
		return &StoreError{TaskID: id, Err: ErrAlreadySucceeded}
	}
	return nil
}

// StoreMany stores metas in order, as Store does, in one pipeline. Metas
// for the same task are applied in slice order. It returns nil when all were
// written, else the errors.Join of a *StoreError per meta not written; the
// others are written all the same.
func (b *Backend) StoreMany(ctx context.Context, metas []protocol.ResultMeta) error {
	type item struct {
		key string
		val []byte
		cmd *redis.Cmd
	}
	var errs []error
	items := make([]item, len(metas))
	pipe := b.client.Pipeline()
	for i, meta := range metas {
		key, val, err := b.encode(meta)
		if err != nil {
			errs = append(errs, &StoreError{TaskID: meta.TaskID, Err: err})
			continue
		}
		items[i] = item{key: key, val: val, cmd: storeScript.EvalSha(ctx, pipe, []string{key}, val, b.ttl)}
	}
	if pipe.Len() == 0 {
		return errors.Join(errs...)
	}
	// Errors are read per command below.
	_, _ = pipe.Exec(ctx)

	// NOSCRIPT means the script cache was empty and that command did
	// nothing: send those again with the script's source, in order.
	var retry redis.Pipeliner
	for i := range items {
		it := &items[i]
		if it.cmd == nil || !redis.HasErrorPrefix(it.cmd.Err(), "NOSCRIPT") {
			continue
		}
		if retry == nil {
			retry = b.client.Pipeline()
		}
		it.cmd = storeScript.Eval(ctx, retry, []string{it.key}, it.val, b.ttl)
	}
	if retry != nil {
		_, _ = retry.Exec(ctx)
	}
	for i, it := range items {
		if it.cmd == nil {
			continue
		}
		n, err := it.cmd.Int64()
		if err := storeOutcome(metas[i].TaskID, n, err); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Get returns the stored meta of task id. A missing key reads as a PENDING
// meta with TaskID set, as Python reports an unknown task.
func (b *Backend) Get(ctx context.Context, id string) (protocol.ResultMeta, error) {
	key := TaskKey(b.prefix, id)
	val, err := b.client.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return pending(id), nil
	}
	if err != nil {
		return protocol.ResultMeta{}, fmt.Errorf("redisbackend: get %s: %w", key, err)
	}
	return decode(key, id, val)
}

// pending is what Python reads for a task with no stored result.
func pending(id string) protocol.ResultMeta {
	return protocol.ResultMeta{Status: protocol.StatePending, TaskID: id}
}

// decode parses a stored or published value; an empty one is PENDING, as
// for Python.
func decode(key, id string, val []byte) (protocol.ResultMeta, error) {
	if len(val) == 0 {
		return pending(id), nil
	}
	var meta protocol.ResultMeta
	if err := meta.UnmarshalJSON(val); err != nil {
		return protocol.ResultMeta{}, fmt.Errorf("redisbackend: decode %s: %w", key, err)
	}
	return meta, nil
}

// Wait returns the meta of task id once it reaches a ready state (SUCCESS,
// FAILURE or REVOKED), as AsyncResult.get() waits: it subscribes to the
// task's channel first, then reads the key, then waits for published states.
// If the subscription reconnects, the key is read again so a state published
// meanwhile is not missed. When ctx ends first, Wait returns the last state
// it saw and ctx's error. A FAILURE or REVOKED result is returned as a meta,
// not as an error.
func (b *Backend) Wait(ctx context.Context, id string) (protocol.ResultMeta, error) {
	key := TaskKey(b.prefix, id)
	ps := b.client.Subscribe(ctx, key)
	defer ps.Close()
	// go-redis reads do not watch ctx; closing the subscription ends them.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()

	last := pending(id)
	if _, err := ps.Receive(ctx); err != nil {
		return last, b.waitErr(ctx, key, err)
	}
	meta, err := b.Get(ctx, id)
	if err != nil {
		return last, b.waitErr(ctx, key, err)
	}
	if b.afterInitialGet != nil {
		b.afterInitialGet()
	}
	if protocol.IsReady(meta.Status) {
		return meta, nil
	}
	last = meta
	ch := ps.ChannelWithSubscriptions()
	for {
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case msg, ok := <-ch:
			if !ok {
				return last, b.waitErr(ctx, key, ErrSubscriptionClosed)
			}
			switch msg := msg.(type) {
			case *redis.Subscription:
				// A re-subscription after a reconnect.
				if meta, err = b.Get(ctx, id); err != nil {
					return last, b.waitErr(ctx, key, err)
				}
			case *redis.Message:
				if meta, err = decode(key, id, []byte(msg.Payload)); err != nil {
					return last, err
				}
			default:
				continue
			}
			if protocol.IsReady(meta.Status) {
				return meta, nil
			}
			last = meta
		}
	}
}

// waitErr prefers ctx's error, since a cancelled Wait closes its own
// subscription.
func (b *Backend) waitErr(ctx context.Context, key string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if errors.Is(err, ErrSubscriptionClosed) {
		return err
	}
	return fmt.Errorf("redisbackend: wait for %s: %w", key, err)
}

// Forget deletes the stored result of task id.
func (b *Backend) Forget(ctx context.Context, id string) error {
	key := TaskKey(b.prefix, id)
	if err := b.client.Del(ctx, key).Err(); err != nil {
		return fmt.Errorf("redisbackend: forget %s: %w", key, err)
	}
	return nil
}

// Ping checks that Redis answers.
func (b *Backend) Ping(ctx context.Context) error {
	if err := b.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisbackend: ping: %w", err)
	}
	return nil
}
