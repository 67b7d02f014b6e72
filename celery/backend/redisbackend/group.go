package redisbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/protocol"
)

var (
	_ backend.ResultBackend = (*Backend)(nil)
	_ backend.ChordStore    = (*Backend)(nil)
	_ backend.GroupStore    = (*Backend)(nil)
)

// EncodeGroupMeta returns the value Celery's GroupResult.save stores for group gid with members:
// {"result": [[gid, null], [[[tid, null], null], ...]]}, spaced as Python's json.dumps spaces it.
func EncodeGroupMeta(gid string, members []string) []byte {
	id, _ := json.Marshal(gid) // a string always marshals
	b := []byte(`{"result": [[`)
	b = append(b, id...)
	b = append(b, `, null], [`...)
	for i, m := range members {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, protocol.TaskTuple(m)...)
	}
	return append(b, "]]}"...)
}

// SaveGroup stores the group as Celery's GroupResult.save does: the value of EncodeGroupMeta under
// GroupKey(gid), SETEX with result_expires (SET without), and PUBLISH on the key's channel.
func (b *Backend) SaveGroup(ctx context.Context, gid string, members []string) error {
	if gid == "" {
		return errors.New("redisbackend: save group: empty group id")
	}
	key, val := GroupKey(b.prefix, gid), EncodeGroupMeta(gid, members)
	if err := b.setAndPublish(ctx, key, val); err != nil {
		return fmt.Errorf("redisbackend: save group %s: %w", gid, err)
	}
	return nil
}

// setAndPublish writes key with the result expiry and publishes the value on the channel of the
// same name, in one round trip, as Celery's KeyValueStoreBackend.set does for a Redis backend.
func (b *Backend) setAndPublish(ctx context.Context, key string, val any) error {
	_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		if b.ttl > 0 {
			p.SetEx(ctx, key, val, secondsDuration(b.ttl))
		} else {
			p.Set(ctx, key, val, 0)
		}
		p.Publish(ctx, key, val)
		return nil
	})
	return err
}

// RestoreGroup reads a saved group's member ids (Celery's GroupResult.restore); a missing key is
// an error wrapping backend.ErrGroupNotFound, a value with nested groups an error naming the
// member.
func (b *Backend) RestoreGroup(ctx context.Context, gid string) ([]string, error) {
	key := GroupKey(b.prefix, gid)
	val, err := b.client.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %s", backend.ErrGroupNotFound, gid)
	}
	if err != nil {
		return nil, fmt.Errorf("redisbackend: restore group %s: %w", gid, err)
	}
	ids, err := DecodeGroupMeta(val)
	if err != nil {
		return nil, fmt.Errorf("redisbackend: restore group %s: %w", gid, err)
	}
	return ids, nil
}
