package redisbroker

import (
	"strconv"
	"strings"
	"unicode"
)

// bindingPrefix is kombu's keyprefix_queue without its %s.
const bindingPrefix = "_kombu.binding."

// key is name with the global key prefix.
func (b *Broker) key(name string) string { return b.opts.KeyPrefix + name }

// step is kombu's Channel.priority: the largest priority step not above pri.
func (b *Broker) step(pri int) int {
	s := b.opts.PrioritySteps[0]
	for _, v := range b.opts.PrioritySteps {
		if v <= pri {
			s = v
		}
	}
	return s
}

// list is kombu's _q_for_pri: the list of queue for priority pri (prefixed).
func (b *Broker) list(queue string, pri int) string {
	if s := b.step(pri); s != 0 {
		return b.key(queue + b.opts.Sep + strconv.Itoa(s))
	}
	return b.key(queue)
}

// lists are every priority list of queue, in the order kombu reads them.
func (b *Broker) lists(queue string) []string {
	out := make([]string, len(b.opts.PrioritySteps))
	for i, s := range b.opts.PrioritySteps {
		out[i] = b.list(queue, s)
	}
	return out
}

// queueOfList is the queue a (prefixed) list belongs to, kombu's dest.rsplit(sep, 1)[0].
func (b *Broker) queueOfList(list string) string {
	list = strings.TrimPrefix(list, b.opts.KeyPrefix)
	if i := strings.LastIndex(list, b.opts.Sep); i >= 0 {
		return list[:i]
	}
	return list
}

func (b *Broker) bindingKey(exchange string) string { return b.key(bindingPrefix + exchange) }

// member is a binding as kombu stores it: routing key, pattern and queue joined by sep.
func (b *Broker) member(routingKey, pattern, queue string) string {
	return routingKey + b.opts.Sep + pattern + b.opts.Sep + queue
}

// parseMember splits a binding; ok is false for one that is not three fields or names no queue.
func (b *Broker) parseMember(m string) (routingKey, pattern, queue string, ok bool) {
	parts := strings.Split(m, b.opts.Sep)
	if len(parts) != 3 || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// kombuTopicPattern is kombu's TopicExchange.key_to_pattern, stored in a topic binding so that
// Python publishers route as they do.
func kombuTopicPattern(key string) string {
	words := strings.Split(escapeRegex(key, ".#*"), ".")
	for i, w := range words {
		switch w {
		case "*":
			words[i] = `.*?[^\.]`
		case "#":
			words[i] = `.*?`
		}
	}
	return "^" + strings.Join(words, `\.`) + "$"
}

func escapeRegex(p, white string) string {
	var sb strings.Builder
	for _, c := range p {
		switch {
		case unicode.IsLetter(c) || unicode.IsDigit(c) || strings.ContainsRune(white, c):
			sb.WriteRune(c)
		case c == 0:
			sb.WriteString(`\000`)
		default:
			sb.WriteByte('\\')
			sb.WriteRune(c)
		}
	}
	return sb.String()
}

// topicMatch is AMQP's topic matching (what the conformance suite and RabbitMQ do): '*' is exactly
// one word, '#' zero or more. kombu's regex lets '*' span words and '#' need one; routing by a Go
// publisher follows AMQP, a Python publisher's follows kombu.
func topicMatch(pattern, key string) bool {
	return matchWords(strings.Split(pattern, "."), strings.Split(key, "."))
}

func matchWords(p, k []string) bool {
	for len(p) > 0 {
		switch p[0] {
		case "#":
			for i := 0; i <= len(k); i++ {
				if matchWords(p[1:], k[i:]) {
					return true
				}
			}
			return false
		case "*":
			if len(k) == 0 {
				return false
			}
		default:
			if len(k) == 0 || k[0] != p[0] {
				return false
			}
		}
		p, k = p[1:], k[1:]
	}
	return len(k) == 0
}
