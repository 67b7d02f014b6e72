package beat_test

import (
	"testing"
	"time"

	"github.com/forumads/forumads/celery/beat"
	"github.com/forumads/forumads/celery/beat/beatstoretest"
)

func TestMemoryStoreConformance(t *testing.T) {
	t.Parallel()
	beatstoretest.Run(t, func(t *testing.T) beat.Store { return beat.NewMemoryStore(time.Minute, nil) })
}
