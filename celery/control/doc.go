// Package control is Celery's remote control ("pidbox"), wire-compatible with Celery 5.2 /
// kombu 5.2: a node's [Mailbox], which answers `celery inspect` and `celery control` from
// Python's CLI, and a [Client], which asks the same questions from Go. Both talk to the broker
// through a [fanout.Transport] (amqpbroker.NewFanout for RabbitMQ); this package never imports
// a broker client.
//
// # Topology
//
// Exactly kombu's, with flags that must match or RabbitMQ refuses the declaration (406):
//
//	celery.pidbox                   fanout, durable=false, auto_delete=false   requests
//	reply.celery.pidbox             direct, durable=false, auto_delete=false   replies
//	<node>.celery.pidbox            queue, durable=false, auto_delete=true, bound with "",
//	                                x-expires 10000, x-message-ttl 300000; consumed no_ack
//	<oid>.reply.celery.pidbox       a client's reply queue (same arguments), bound with <oid>
//
// "celery" is [Options].Namespace (Celery's control_exchange); tests use another one to keep
// to themselves.
//
// # Requests and replies
//
// A request is a JSON body {"method", "arguments", "destination", "pattern", "matcher",
// "ticket", "reply_to"} with headers {"clock", "expires"} (see [Request], [DecodeRequest]). A
// node acts when the destination lists it, or else when the pattern matches its name (glob as
// Python's fnmatch, pcre as re.match), or else always. A request whose expires time has passed is
// ignored. The reply goes to reply_to's exchange and routing key with headers {"ticket", "clock"}
// and the body {"<node>": result}. A handler that fails, and a command no handler is registered
// for, reply {"error": "<Python repr>"} as Python does ("KeyError('nosuch')"). A message that
// is not a valid request is logged and dropped; it never stops the mailbox.
//
// # Handlers
//
// Commands are plain functions registered by name:
//
//	tr, err := amqpbroker.NewFanout(url, amqpbroker.Options{ConnectionName: "celery-control"})
//	mb, err := control.NewMailbox("celery@"+host, tr, control.Options{})
//	mb.Handle("ping", func(ctx context.Context, _ json.RawMessage) (any, error) {
//		return control.OK("pong"), nil
//	})
//	go mb.Run(ctx)
//
// [OK] and [Error] build Celery's {"ok": …} and {"error": …} shapes; [RequestInfo] and
// [ScheduledInfo] are the items of `inspect active/reserved/scheduled`; [DecodeRevokeArgs],
// [DecodeRateLimitArgs] and [DecodeActiveArgs] read the arguments the CLI sends; [RevokeReply],
// [RegisteredEntry] and the rate_limit texts produce its answers, in Celery 5.2's words.
//
// Handlers run one at a time, in arrival order, as in a Python worker: a slow handler delays the
// requests behind it. A handler's context ends when the request expires (the client has stopped
// waiting) or the mailbox stops. A Python worker starting up broadcasts "hello" (mingle); a node
// without a hello handler answers {"error": "KeyError('hello')"}, which Python's mingle ignores.
//
// # Clock
//
// [Clock] is kombu's Lamport clock: the node ticks it for every request it receives and moves it
// past the request's clock header, and every reply carries a new tick.
package control
