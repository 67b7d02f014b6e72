// This file holds mingle: the hello command a worker answers and Mingle, which asks the other
// workers at startup for their revoked ids and logical clock.

package workerctl

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/forumads/forumads/celery/control"
	"github.com/forumads/forumads/celery/internal/engine"
)

// hello answers a Python worker's mingle: its revoked ids join the store, and the reply carries
// ours ({id: time}) and the clock. A node's own hello gets null, as in Celery.
func (c *controller) hello(ctx context.Context, args json.RawMessage) (any, error) {
	a, err := decodeHelloArgs(args)
	if err != nil {
		return nil, err
	}
	if a.FromNode == c.mb.Node() {
		return nil, nil
	}
	w, log := c.e, c.e.Logger()
	log.Info("sync with "+a.FromNode, "revoked", len(a.Revoked))
	if err := w.LearnRevoked(ctx, a.Revoked); err != nil {
		log.Warn("the revoked ids of "+a.FromNode+" are kept in memory only", "error", err)
	}
	ids, err := w.RevokedIDs(ctx)
	if err != nil {
		log.Warn("hello: the revoke store did not answer; sending the ids known in memory", "error", err)
	}
	// Celery's LimitedSet wants a float: the time the id was added, on the monotonic clock
	// (seconds since boot on Linux). Every id is sent as added now: it stays revoked there for
	// Celery's 3 hours from now.
	ts := json.RawMessage(strconv.FormatFloat(monotonicSeconds(), 'f', 6, 64))
	revoked := make(map[string]json.RawMessage, len(ids))
	for _, id := range ids {
		revoked[id] = ts
	}
	return map[string]any{"revoked": revoked, "clock": c.mb.Clock().Tick()}, nil
}

// monotonicSeconds approximates Python's time.monotonic() on Linux: the seconds since boot
// (/proc/uptime), or 0 where that cannot be read.
func monotonicSeconds() float64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(b), " ")
	v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
	if err != nil || v < 0 {
		return 0
	}
	return v
}

// Mingle does what a Python worker does when it starts (mingle): w broadcasts hello with the
// revoked ids it knows, through cl, and waits a second for the other workers' answers; the ids
// they answer with are revoked here (and in the store), and their clocks move mb's. Workers
// that do not answer hello (without mingle) are skipped. It returns how many nodes answered.
func Mingle(ctx context.Context, w *engine.Engine, cl *control.Client, mb *control.Mailbox) (int, error) {
	log := w.Logger()
	log.Info("mingle: searching for neighbors")
	ids, err := w.RevokedIDs(ctx)
	if err != nil {
		log.Warn("mingle: the revoke store did not answer; sending the ids known in memory", "error", err)
	}
	ts := json.RawMessage(strconv.FormatFloat(monotonicSeconds(), 'f', 6, 64))
	ours := make(map[string]json.RawMessage, len(ids))
	for _, id := range ids {
		ours[id] = ts
	}
	replies, err := cl.Broadcast(ctx, "hello", map[string]any{"from_node": mb.Node(), "revoked": ours}, nil, time.Second)
	if err != nil {
		return 0, fmt.Errorf("mingle: %w", err)
	}
	synced := 0
	var learned []string
	for node, raw := range replies {
		if node == mb.Node() {
			continue
		}
		r, err := decodeHelloReply(raw)
		if err != nil {
			log.Debug("mingle: no sync with "+node, "error", err)
			continue
		}
		synced++
		if r.Clock > 0 {
			mb.Clock().Forward(r.Clock)
		} else {
			mb.Clock().Tick()
		}
		learned = append(learned, r.Revoked...)
	}
	if synced == 0 {
		log.Info("mingle: all alone")
		return 0, nil
	}
	log.Info(fmt.Sprintf("mingle: sync with %d nodes", synced), "revoked", len(learned))
	if err := w.LearnRevoked(ctx, learned); err != nil {
		log.Warn("mingle: the revoked ids learned are kept in memory only", "error", err)
	}
	log.Info("mingle: sync complete")
	return synced, nil
}
