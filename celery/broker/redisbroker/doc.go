// Package redisbroker is kombu 5.2's Redis transport (Debian's python3-kombu 5.2.4,
// kombu/transport/redis.py) as a broker.Broker and a fanout.Transport, so that Go workers, the
// Go client and beat share Redis queues with Python Celery 5.2 workers and clients, changing
// nothing on the Python side. It works on any redis.UniversalClient (a plain client for
// redis://, a failover client for Sentinel) and does not own it.
//
// # Layout (kombu's)
//
//   - A queue is a list: published with LPUSH, taken from the right end. Priority p goes to the
//     list "<queue><sep><step>" of the largest priority step not above p (step 0: the queue's own
//     list); lists are read in step order, so a lower number is served first.
//   - Each entry is kombu's JSON envelope ([Message], [DecodeMessage], [EncodeMessage]).
//   - Bindings are members "<routing key><sep><pattern><sep><queue>" of the set
//     "_kombu.binding.<exchange>"; fanout exchanges are PUBLISH channels
//     "<fanout_prefix><exchange>[/<routing key>]" (see [Fanout]).
//   - A taken message is recorded in the hash "unacked" (tag → [message, exchange, routing key])
//     and the sorted set "unacked_index" (tag → time taken); "unacked_mutex" serialises restores.
//
// Keys of this adapter's own, which kombu neither reads nor needs: "_forumads.delayed" (parked
// messages, [Broker.Park]) and, per consuming Go consumer, "_forumads.take.<consumer id>", the
// receipt of its last take (the token of the take and the lists, tags and entry lengths of the
// messages it took; it expires with the visibility timeout and is deleted when the consumer
// ends). A take whose reply is lost (the connection cut or the master killed after the script
// ran) is sent again with the same token and replays its messages from the unacked hash instead
// of leaving them there, unseen, until the visibility timeout (see takeScript).
//
// # What it does better than kombu
//
// Taking a message and recording it as unacknowledged is one Lua step, so a killed worker loses
// nothing. A consuming Broker restores others' messages past the visibility timeout every second
// ([Broker.RestoreVisible], under kombu's mutex and by kombu's scores) and renews the scores of
// the messages it holds, so a long task or a far ETA it holds is not restored and run twice.
// Restores are atomic per message and give the message a new delivery tag. Entries that cannot
// be read, and messages that would route nowhere, are parked in the dead-letter queue instead
// of being lost. [Broker.Park] (broker.Parker) keeps far-future ETA messages in a sorted set
// instead of holding them.
//
// Options come from Celery's broker_transport_options with kombu's names
// ([ParseTransportOptions]).
package redisbroker
