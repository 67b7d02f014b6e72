package celery

import (
	"time"

	"github.com/forumads/forumads/celery/internal/ratelimit"
)

// ParseRateLimit reads a Celery rate limit ("100/s", "10/m", "1/h", or a bare number per second)
// and returns the interval between two task starts. "" or "0" means no limit (0).
func ParseRateLimit(s string) (time.Duration, error) { return ratelimit.Parse(s) }
