// Package revoke is the seam between a worker and where revoked task ids are kept: the [Store]
// interface, the notices stores exchange, Celery's signal names, and [MemoryStore], an in-memory
// Store for one process (tests, examples, a single worker).
//
// Celery keeps revoked ids in each worker's memory (50 000 ids, each for 3 hours, lost at restart
// unless --statedb is used; new workers learn them through mingle). A shared Store (package
// redisrevoke, in Redis) lets every worker, including one started later, see a revoke made
// through any of them, and a worker restart forgets nothing.
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

// Revocation is one revoked id as a subscriber learns of it.
type Revocation struct {
	// ID is the revoked task id.
	ID string
	// Terminate asks to stop the task if it is running, with Signal (a name such as "SIGTERM").
	Terminate bool
	// Signal is the signal name when Terminate is set, else "".
	Signal string
	// Expires is when the id stops being revoked.
	Expires time.Time
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
