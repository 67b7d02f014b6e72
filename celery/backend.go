package celery

import "github.com/forumads/forumads/celery/backend"

// ResultBackend stores and reads task states the way Python Celery does: Store / Get / Wait, a
// stored SUCCESS never overwritten, an unknown id PENDING. It is [backend.ResultBackend]; the
// adapters are in packages redisbackend (Redis) and memorybackend (one process).
type ResultBackend = backend.ResultBackend
