// Package clustertest holds the tests that need a 3-node RabbitMQ cluster: they reuse one that
// scripts/rabbitmq-cluster.sh started (rmq1..3@localhost on AMQP ports 5681-5683 by default, the
// script's RMQ_CLUSTER_* settings otherwise) or start one and stop it at the end, run Go workers
// and a Go client on quorum queues against it, and kill nodes with kill -9 while tasks flow. The
// poison test runs a Go worker process against the single node of services.sh. The package has
// no code of its own.
package clustertest
