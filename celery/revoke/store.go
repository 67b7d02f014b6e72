// Package revoke is the seam between a worker and where revoked task ids are kept: the [Store]
// interface, the notices stores exchange, Celery's signal names, and [MemoryStore], an in-memory
// Store for one process (tests, examples, a single worker).
//
// Celery keeps revoked ids in each worker's memory (50 000 ids, each for 3 hours, lost at restart
// unless --statedb is used; new workers learn them through mingle). A shared Store (package
// redisrevoke, in Redis) lets every worker, including one started later, see a revoke made
// through any of them, and a worker restart forgets nothing.
//
// # What a subscriber can trust
//
// [Store.Subscribe] may drop notices (a Redis subscriber that lost its connection misses what was
// published meanwhile), so a worker that only subscribes must still ask the store about every
// task it receives. A [Follower] says when that happens: its [Follower.Follow] stream marks the
// moment the subscription is confirmed (Live) and the moment notices may start being lost (Gap).
// A worker that loaded the store's set ([Follower.Entries]) after a Live, and has seen no Gap
// since, holds every revoked id in memory and need not ask the store; after a Gap it asks again
// until the next Live and reload. A Store that is not a Follower is never trusted so.
//
// The package imports only the standard library; the Redis adapter is the sub-package
// redisrevoke, so that depending on the interface does not link go-redis.
package revoke

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultPrefix is the key prefix of a Redis store given none.
const DefaultPrefix = "celery:revoked:"

// DefaultTTL is how long an id stays revoked: Celery's REVOKE_EXPIRES, 10800 s.
const DefaultTTL = 3 * time.Hour

// DefaultMaxSize is the most ids a store keeps: Celery's REVOKES_MAX, 50 000.
const DefaultMaxSize = 50000

// Store keeps revoked task ids for every worker that shares it, each for the store's TTL, and
// tells subscribers of new revokes. Implementations are safe for concurrent use.
type Store interface {
	// Revoke marks ids revoked for TTL and notifies subscribers. A second revoke of an id extends
	// its expiry, never shortens it. terminate and signal say whether running tasks should be
	// stopped, and how (a signal name such as "SIGTERM", "TERM" or "KILL", or a number; "" is
	// SIGTERM when terminating; see ParseSignal). An empty id, or an unknown signal, is an error
	// and nothing is revoked (see CheckRevoke). No ids is a no-op. Past the store's bound the ids
	// closest to expiry are evicted first.
	Revoke(ctx context.Context, ids []string, terminate bool, signal string) error
	// IsRevoked reports whether id is revoked and not yet expired.
	IsRevoked(ctx context.Context, id string) (bool, error)
	// AreRevoked is IsRevoked for many ids at once (one round trip where the store has them):
	// out[i] is ids[i]'s answer.
	AreRevoked(ctx context.Context, ids []string) ([]bool, error)
	// List returns the revoked ids that have not expired, soonest to expire first.
	List(ctx context.Context) ([]string, error)
	// Subscribe delivers every id revoked through any Store sharing this one's ids, from the
	// moment it returns until ctx ends; then the channel is closed. A Store may drop notices
	// while it cannot reach its server (the ids are still in the set); receive promptly.
	Subscribe(ctx context.Context) (<-chan Revocation, error)
	// TTL is how long an id stays revoked.
	TTL() time.Duration
	// String names the store for logs and banners (a Redis key, "memory").
	String() string
}

// Follower is a Store whose subscription tells when it may have missed notices, so that a
// subscriber can know when what it was told, with the set it loaded, is every revoke (see the
// package documentation). MemoryStore and the Redis store are Followers.
type Follower interface {
	Store
	// Follow is Subscribe with the subscription's state in the stream. Its first value, and the
	// first after each Gap, is a marker with Live set: the subscription is confirmed, and every
	// revoke made after it through any Store sharing the ids is delivered, until the next Gap. A
	// marker with Gap set is sent as soon as the store sees that notices may have been lost (its
	// connection broke), before it subscribes again; the next Live follows once the new
	// subscription is confirmed. Markers have no ID. A store that never loses a notice never
	// sends Gap. The channel is closed when ctx ends.
	Follow(ctx context.Context) (<-chan Revocation, error)
	// Entries is List with each id's expiry: the revoked ids that have not expired, soonest to
	// expire first.
	Entries(ctx context.Context) ([]Entry, error)
}

// Entry is a revoked id in a store's set and when it stops being revoked.
type Entry struct {
	ID      string
	Expires time.Time
}

// Revocation is one revoked id as a subscriber learns of it, or, from [Follower.Follow] only, a
// marker of the subscription's state (Live or Gap set, no ID).
type Revocation struct {
	// ID is the revoked task id.
	ID string
	// Terminate asks to stop the task if it is running, with Signal (a name such as "SIGTERM").
	Terminate bool
	// Signal is the signal name when Terminate is set, else "".
	Signal string
	// Expires is when the id stops being revoked.
	Expires time.Time
	// Live marks the subscription confirmed: every revoke made from here on is delivered, until a
	// Gap. Only Follow sends it.
	Live bool
	// Gap marks that notices may have been lost from here until the next Live. Only Follow sends
	// it.
	Gap bool
}

// CheckRevoke validates the arguments of Store.Revoke and returns the signal name to record: ""
// without terminate, else the canonical name of signal ("" = SIGTERM). An empty id or an unknown
// signal is an error, for every Store alike.
func CheckRevoke(ids []string, terminate bool, signal string) (string, error) {
	for _, id := range ids {
		if id == "" {
			return "", errors.New("revoke: empty task id")
		}
	}
	if terminate {
		sig, err := ParseSignal(signal)
		if err != nil {
			return "", fmt.Errorf("revoke: %w", err)
		}
		return sig, nil
	}
	if signal != "" {
		if _, err := ParseSignal(signal); err != nil {
			return "", fmt.Errorf("revoke: %w", err)
		}
	}
	return "", nil
}
