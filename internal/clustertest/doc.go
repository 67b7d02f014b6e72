// Package clustertest holds the tests that need a 3-node RabbitMQ cluster: it starts one with
// scripts/rabbitmq-cluster.sh (rmq1..3@localhost on AMQP ports 5681-5683), runs Go workers and a
// Go client on quorum queues against it, kills nodes with kill -9 while tasks flow, and stops the
// cluster at the end. The package has no code of its own.
package clustertest
