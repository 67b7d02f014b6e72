package results_test

import (
	"testing"
	"time"

	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/backend/backendtest"
	"github.com/forumads/forumads/djangoapps/results"
)

// TestConformance runs the result backend suite on tables made by django-celery-results' own
// migrations (one migrated schema, cloned for each subtest). The tables have no group_id column.
func TestConformance(t *testing.T) {
	t.Parallel()
	template := migratedSchema(t)
	backendtest.RunOptions(t, func(t *testing.T) backend.Backend {
		s := cloneTables(t, template)
		return results.New(s.DB, results.Options{PollInterval: 20 * time.Millisecond})
	}, backendtest.Options{WithoutGroupID: true})
}
