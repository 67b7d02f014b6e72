package djangoexample_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/internal/testdb"
	"github.com/forumads/forumads/internal/testenv"
)

// importRig is what the end-to-end import tests share: the built Go worker, the test's own
// PostgreSQL schema, Redis key prefix and queues (deleted at cleanup), and the project's
// celeryconfig.yaml routing ads.import_feed and ads.score to those queues.
type importRig struct {
	bins                  map[string]string
	pg                    *testdb.PG
	rc                    *redis.Client
	importQueue, adsQueue string
	prefix                string
	config                string
}

// newImportRig sets up the rig; tag ("djt", "djp") keeps each test's queue names apart.
func newImportRig(t *testing.T, tag string) *importRig {
	t.Helper()
	requirePython(t)
	testenv.AMQP(t)
	r := &importRig{rc: testenv.Redis(t), pg: testdb.Postgres(t)}
	bins, cleanup, err := testenv.BuildPrograms(false, "./worker")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	r.bins = bins

	r.importQueue, r.adsQueue = testenv.Name(t, tag+".import"), testenv.Name(t, tag+".ads")
	deadLetter := r.importQueue + ".dlq"
	testenv.DeleteQueuesAtCleanup(t, r.importQueue, r.adsQueue, deadLetter)
	r.prefix = "t:" + testenv.Suffix() + ":"
	t.Cleanup(func() { deletePrefix(t, r.prefix) })
	r.config = testConfig(t, r.importQueue, r.adsQueue, deadLetter)
	return r
}

// startWorker starts the Go worker on the rig's queues. At cleanup it is stopped warm (which must
// exit 0) and the result of every task it logged as received is deleted from Redis.
func (r *importRig) startWorker(t *testing.T, name string) *process {
	t.Helper()
	cmd := exec.Command(r.bins["./worker"], "--config", r.config, "-Q", r.importQueue+","+r.adsQueue,
		"-c", "2", "-n", name+"-"+testenv.Suffix()+"@%h", "-l", "info")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+r.pg.URL, "REDIS_URL="+testenv.RedisURL(), "ADS_KEY_PREFIX="+r.prefix,
		"CELERY_BROKER_URL="+testenv.AMQPURL(), "CELERY_RESULT_BACKEND="+testenv.RedisURL())
	worker := start(t, "go worker", cmd)
	t.Cleanup(func() {
		if err := worker.stop(syscall.SIGTERM, 30*time.Second); err != nil {
			t.Errorf("go worker: a warm shutdown should exit 0: %v", err)
		}
		var keys []string
		for _, m := range receivedPattern.FindAllStringSubmatch(worker.log.String(), -1) {
			keys = append(keys, "celery-task-meta-"+m[1])
		}
		if len(keys) > 0 {
			if err := r.rc.Del(context.Background(), keys...).Err(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return worker
}

// startRunserver starts `manage.py runserver` on a free loopback port with env (plus extra
// arguments such as --insecure) and returns its base URL once "/" answers 200.
func startRunserver(t *testing.T, ctx context.Context, env []string, extra ...string) (*process, string) {
	t.Helper()
	port := freePort(t)
	args := append([]string{"manage.py", "runserver", "--noreload"}, extra...)
	server := exec.Command(pythonPath(), append(args, fmt.Sprintf("127.0.0.1:%d", port))...)
	server.Dir, server.Env = projectDir(t), env
	web := start(t, "runserver", server)
	t.Cleanup(func() { _ = web.stop(syscall.SIGINT, 10*time.Second) })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	web.waitUntil(t, "serving", 60*time.Second, func() bool {
		code, _, err := get(ctx, base+"/")
		return err == nil && code == http.StatusOK
	})
	return web, base
}
