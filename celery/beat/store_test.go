package beat_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/forumads/forumads/celery/beat"
	"github.com/forumads/forumads/celery/beat/beatstoretest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemoryStoreConformance(t *testing.T) {
	t.Parallel()
	beatstoretest.Run(t, func(t *testing.T) beat.Store { return beat.NewMemoryStore(time.Minute, nil) })
}
