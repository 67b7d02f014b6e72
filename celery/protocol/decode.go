// This file holds Decode, which tells the Celery protocol versions apart and decodes a message of
// each, and the body decoding (content type, compression) they share.

package protocol

import (
	"fmt"
	"strconv"
)

// Decode turns one AMQP message into a TaskMessage, telling the protocol
// versions apart the way a Celery 5.x worker does:
//
//  1. A `task` header marks protocol 2. The body must be [args, kwargs, embed];
//     a dict body containing "args" is a "hybrid" message (v2 headers, v1 body),
//     whose body fields are overridden by the headers.
//  2. Otherwise the body is decoded: a dict with a "task" key is protocol 1,
//     anything else is not a task (ErrUnknownMessage).
//
// The content type must pass accept (a missing content type counts as
// application/data: raw bytes, so not a task). A `compression` header is
// honoured (zlib, bzip2). JSON bodies are kept as raw JSON, so numbers stay
// exact; msgpack and YAML bodies are converted to JSON. Pickle is never
// deserialized.
//
// Every failure is a *MessageError; test its kind with errors.Is against
// ErrContentDisallowed, ErrUndecodable, ErrInvalidTask or ErrUnknownMessage.
// Decode never panics, whatever the input.
//
// The returned message's raw JSON values may alias env.Body.
func Decode(env Envelope, accept Accept) (*TaskMessage, error) {
	if taskHdr, ok := env.Headers["task"]; ok {
		return decodeV2(&env, accept, taskHdr)
	}
	return decodeV1(&env, accept)
}

// v2Fields are the headers decodeV2 applies, in a fixed order so the first
// error reported is deterministic.
var v2Fields = [...]string{
	"shadow", "eta", "expires", "group", "group_index", "retries", "timelimit",
	"root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result",
}

// hybridFields are the v1 body fields a hybrid message takes before the
// headers override them (celery.worker.strategy.hybrid_to_proto2).
var hybridFields = [...]string{
	"root_id", "parent_id", "group", "shadow", "eta", "expires", "retries",
	"timelimit", "argsrepr", "kwargsrepr", "origin",
}

// v1Fields are the v1 body fields besides task, id, args, kwargs and the
// canvas parts.
var v1Fields = [...]string{
	"shadow", "eta", "expires", "group", "group_index", "retries", "timelimit",
	"root_id", "parent_id", "origin", "ignore_result", "utc",
}

func newMessage(env *Envelope, protocol int) *TaskMessage {
	m := &TaskMessage{
		Protocol:      protocol,
		UTC:           true,
		CorrelationID: env.CorrelationID,
		ReplyTo:       env.ReplyTo,
	}
	if env.Priority != 0 {
		p := env.Priority
		m.Priority = &p
	}
	return m
}

func decodeV2(env *Envelope, accept Accept, taskHdr any) (*TaskMessage, error) {
	h := env.Headers
	name, nameErr := hdrString(taskHdr)
	idVal, idPresent := h["id"]
	id, idErr := hdrString(idVal)
	errID := id
	if idErr != nil || id == "" {
		errID = env.CorrelationID
	}
	fail := func(kind ErrorKind, reason string, err error) (*TaskMessage, error) {
		return nil, &MessageError{Kind: kind, Reason: reason, TaskID: errID, TaskName: name, Err: err}
	}
	if nameErr != nil || name == "" {
		return fail(ErrInvalidTask, "task header is not a non-empty string", nameErr)
	}
	body, merr := decodeBody(env, accept)
	if merr != nil {
		merr.TaskID, merr.TaskName = errID, name
		return nil, merr
	}
	top, err := topValue(body)
	if err != nil {
		return fail(ErrUndecodable, "body is not valid JSON", err)
	}
	m := newMessage(env, 2)
	m.Task = name

	var parts [3][]byte
	switch jsonKind(top) {
	case '[':
		n := 0
		err := eachElem(top, func(e []byte) error {
			if n < len(parts) {
				parts[n] = e
			}
			n++
			return nil
		})
		if err != nil {
			return fail(ErrUndecodable, "body is not valid JSON", err)
		}
		if n != 3 {
			return fail(ErrInvalidTask, "body must be [args, kwargs, embed], got "+strconv.Itoa(n)+" elements", nil)
		}
	case '{':
		fields, err := objectFields(top)
		if err != nil {
			return fail(ErrUndecodable, "body is not valid JSON", err)
		}
		if _, ok := fields["args"]; !ok {
			return fail(ErrInvalidTask, "body is a dict without args, not [args, kwargs, embed]", nil)
		}
		m.Hybrid = true
		if !idPresent {
			if raw, ok := fields["id"]; ok {
				id, idErr = rawStringOrNull(raw)
			}
		}
		for _, k := range hybridFields {
			raw, ok := fields[k]
			if !ok {
				continue
			}
			if _, overridden := h[k]; overridden {
				continue
			}
			if err := applyRawField(m, k, raw); err != nil {
				return fail(ErrInvalidTask, "invalid body field", err)
			}
		}
		if raw, ok := fields["utc"]; ok {
			if err := applyRawField(m, "utc", raw); err != nil {
				return fail(ErrInvalidTask, "invalid body field", err)
			}
		}
		parts[0], parts[1] = fields["args"], fields["kwargs"]
		if err := parseV1Canvas(fields, &m.Embed); err != nil {
			return fail(ErrInvalidTask, "invalid canvas field", err)
		}
	default:
		return fail(ErrInvalidTask, "body is not [args, kwargs, embed]", nil)
	}

	if idErr != nil || id == "" {
		return fail(ErrInvalidTask, "id header missing or not a non-empty string", idErr)
	}
	m.ID = id
	errID = id

	known := 1 // task
	if idPresent {
		known++
	}
	for _, k := range v2Fields {
		if v, ok := h[k]; ok {
			known++
			if err := applyField(m, k, v); err != nil {
				return fail(ErrInvalidTask, "invalid header", err)
			}
		}
	}
	for _, k := range [...]string{"lang", "compression"} {
		if _, ok := h[k]; ok {
			known++
		}
	}
	if len(h) > known { // skip the map walk when there is nothing extra
		collectExtraHeaders(m, h)
	}

	if m.Args, err = rawArray(parts[0]); err != nil || m.Args == nil {
		return fail(ErrInvalidTask, "args must be a list", err)
	}
	if parts[1] == nil { // hybrid body without kwargs
		parts[1] = []byte("{}")
	}
	if jsonKind(parts[1]) != '{' {
		return fail(ErrInvalidTask, "kwargs must be a mapping", nil)
	}
	if m.Kwargs, m.KwargsOrder, err = rawObject(parts[1]); err != nil {
		return fail(ErrInvalidTask, "kwargs must be a mapping", err)
	}
	if !m.Hybrid {
		if err := parseEmbed(parts[2], &m.Embed); err != nil {
			return fail(ErrInvalidTask, "invalid embed", err)
		}
	}
	return m, nil
}

func decodeV1(env *Envelope, accept Accept) (*TaskMessage, error) {
	errID, name := env.CorrelationID, ""
	fail := func(kind ErrorKind, reason string, err error) (*TaskMessage, error) {
		return nil, &MessageError{Kind: kind, Reason: reason, TaskID: errID, TaskName: name, Err: err}
	}
	body, merr := decodeBody(env, accept)
	if merr != nil {
		merr.TaskID = errID
		return nil, merr
	}
	top, err := topValue(body)
	if err != nil {
		return fail(ErrUndecodable, "body is not valid JSON", err)
	}
	if jsonKind(top) != '{' {
		return fail(ErrUnknownMessage, "no task header and the body is not a dict", nil)
	}
	fields, err := objectFields(top)
	if err != nil {
		return fail(ErrUndecodable, "body is not valid JSON", err)
	}
	taskRaw, ok := fields["task"]
	if !ok {
		return fail(ErrUnknownMessage, "no task header and no task field in the body", nil)
	}
	name, nameErr := rawStringOrNull(taskRaw)
	id, idErr := "", error(nil)
	if raw, ok := fields["id"]; ok {
		id, idErr = rawStringOrNull(raw)
	}
	if idErr == nil && id != "" {
		errID = id
	}
	if nameErr != nil || name == "" {
		return fail(ErrInvalidTask, "task field is not a non-empty string", nameErr)
	}
	if idErr != nil || id == "" {
		return fail(ErrInvalidTask, "id field missing or not a non-empty string", idErr)
	}
	m := newMessage(env, 1)
	m.Task, m.ID = name, id
	for _, k := range v1Fields {
		if raw, ok := fields[k]; ok {
			if err := applyRawField(m, k, raw); err != nil {
				return fail(ErrInvalidTask, "invalid body field", err)
			}
		}
	}
	if raw, ok := fields["taskset"]; ok { // Celery copies taskset over group
		if err := applyRawField(m, "group", raw); err != nil {
			return fail(ErrInvalidTask, "invalid body field", err)
		}
	}
	argsRaw, kwargsRaw := fields["args"], fields["kwargs"]
	if argsRaw == nil {
		argsRaw = []byte("[]")
	}
	if kwargsRaw == nil {
		kwargsRaw = []byte("{}")
	}
	if m.Args, err = rawArray(argsRaw); err != nil || m.Args == nil {
		return fail(ErrInvalidTask, "args must be a list", err)
	}
	if jsonKind(kwargsRaw) != '{' {
		return fail(ErrInvalidTask, "kwargs must be a mapping", nil)
	}
	if m.Kwargs, m.KwargsOrder, err = rawObject(kwargsRaw); err != nil {
		return fail(ErrInvalidTask, "kwargs must be a mapping", err)
	}
	if err := parseV1Canvas(fields, &m.Embed); err != nil {
		return fail(ErrInvalidTask, "invalid canvas field", err)
	}
	// Celery's proto1_to_proto2 sets both reprs with an unbounded saferepr of
	// the list and the dict.
	m.ArgsRepr = safeReprArgs(m.Args, 0, false)
	m.KwargsRepr = safeReprKwargs(m.KwargsOrder, m.Kwargs, 0)
	collectExtraHeaders(m, env.Headers)
	return m, nil
}

// decodeBody runs the accept check, decompression and the deserializer, and
// returns the body as JSON. The error has no task id or name yet.
func decodeBody(env *Envelope, accept Accept) ([]byte, *MessageError) {
	ct := env.ContentType
	if !accept.Allows(ct) {
		return nil, &MessageError{Kind: ErrContentDisallowed, Reason: fmt.Sprintf("content type %q is not accepted", ct)}
	}
	body := env.Body
	if c, ok := env.Headers["compression"]; ok && c != nil {
		method, err := hdrString(c)
		if err != nil {
			return nil, &MessageError{Kind: ErrUndecodable, Reason: "compression header is not a string"}
		}
		if method != "" {
			if body, err = decompress(method, body); err != nil {
				return nil, &MessageError{Kind: ErrUndecodable, Reason: "cannot decompress the body", Err: err}
			}
		}
	}
	var err error
	switch ct {
	case ContentTypeJSON:
		return body, nil
	case ContentTypeMsgpack:
		if body, err = msgpackToJSON(body); err != nil {
			return nil, &MessageError{Kind: ErrUndecodable, Reason: "body is not valid msgpack", Err: err}
		}
		return body, nil
	case ContentTypeYAML:
		if body, err = yamlToJSON(body); err != nil {
			return nil, &MessageError{Kind: ErrUndecodable, Reason: "body is not valid YAML", Err: err}
		}
		return body, nil
	case "":
		ct = ContentTypeData
	}
	return nil, &MessageError{Kind: ErrUnknownMessage, Reason: fmt.Sprintf("content type %q has no decoder: the body is raw bytes, not a task", ct)}
}
