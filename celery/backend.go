package celery

import (
	"context"

	"github.com/forumads/forumads/celery/protocol"
)

// ResultBackend stores and reads task states the way Python Celery does (see package redisbackend).
type ResultBackend interface {
	// Store writes a task's state; a stored SUCCESS is never overwritten.
	Store(ctx context.Context, meta protocol.ResultMeta) error
	// Get reads a task's state; an unknown id is PENDING.
	Get(ctx context.Context, id string) (protocol.ResultMeta, error)
	// Wait blocks until the task is in a ready state (SUCCESS, FAILURE, REVOKED) or ctx ends.
	Wait(ctx context.Context, id string) (protocol.ResultMeta, error)
}
