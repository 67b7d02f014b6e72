// Package layout holds no code: its tests check the repository's dependency rules with `go list`,
// so that a change breaking one fails `go test` with the offending import chain named.
//
// The rules, in layout_test.go, are a table of (packages → forbidden imports, allowed exceptions):
// the Celery library and its test binaries link no PostgreSQL driver, sqlx or ads code; amqp091-go is
// imported only by the AMQP adapter; go-redis only by the Redis adapters and celery/redisconn (their
// client). A rule that is not yet enforced still lists its violations in the test log.
package layout
