package results

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/forumads/forumads/celery/protocol"
)

// The content type and encoding of every value this backend writes: Celery's json serializer.
const (
	ContentType     = "application/json"
	ContentEncoding = "utf-8"
)

// ErrContent is the error decoding wraps for a stored value this backend cannot read: a content
// type other than JSON (e.g. pickle), bad base64 under content_encoding binary, or invalid JSON.
var ErrContent = errors.New("results: unreadable stored content")

// encodeContent is DatabaseBackend.encode_content with the json serializer: v as Python's
// json.dumps writes it.
func encodeContent(v any) (string, error) {
	b, err := protocol.PyJSON(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// decodeContent is DatabaseBackend.decode_content: the JSON value stored in content under
// contentType and encoding ("binary" content is base64), or nil for an empty or NULL column.
func decodeContent(contentType, encoding string, content *string) (json.RawMessage, error) {
	if content == nil || *content == "" {
		return nil, nil
	}
	raw := []byte(*content)
	if encoding == "binary" {
		dec, err := base64.StdEncoding.DecodeString(*content)
		if err != nil {
			return nil, fmt.Errorf("%w: content_encoding binary: %v", ErrContent, err)
		}
		raw = dec
	}
	if contentType != "" && contentType != ContentType {
		return nil, fmt.Errorf("%w: content_type %q (only %s is read; set result_serializer json)", ErrContent, contentType, ContentType)
	}
	raw = bytes.TrimSpace(raw)
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%w: not JSON: %.40q", ErrContent, raw)
	}
	return raw, nil
}

// resultTuple is a result's as_tuple() for an id without parent: [[id, null], null].
func resultTuple(id string) []any { return []any{[]any{id, nil}, nil} }

// groupTuple is GroupResult.as_tuple() of group gid with members ids: [[gid, null], [tuples…]].
func groupTuple(gid string, ids []string) []any {
	nodes := make([]any, len(ids))
	for i, id := range ids {
		nodes[i] = resultTuple(id)
	}
	return []any{[]any{gid, nil}, nodes}
}

// tupleID is the id of one result tuple [[id, parent], nodes] (a group's id when nodes is a list,
// as result_from_tuple reads it).
func tupleID(raw json.RawMessage) (string, error) {
	var t []json.RawMessage
	if err := json.Unmarshal(raw, &t); err != nil || len(t) != 2 {
		return "", fmt.Errorf("%w: result tuple %.60s: want [[id, parent], nodes]", ErrContent, raw)
	}
	var head []json.RawMessage
	if err := json.Unmarshal(t[0], &head); err != nil || len(head) != 2 {
		return "", fmt.Errorf("%w: result tuple %.60s: want [id, parent] first", ErrContent, raw)
	}
	var id string
	if err := json.Unmarshal(head[0], &id); err != nil || id == "" {
		return "", fmt.Errorf("%w: result tuple %.60s: the id is not a non-empty string", ErrContent, raw)
	}
	return id, nil
}

// decodeGroupTuple reads a saved group's result (GroupResult.as_tuple()) and returns its
// members' ids in order.
func decodeGroupTuple(raw json.RawMessage) ([]string, error) {
	var t []json.RawMessage
	if err := json.Unmarshal(raw, &t); err != nil || len(t) != 2 {
		return nil, fmt.Errorf("%w: group tuple %.60s: want [[gid, parent], [members]]", ErrContent, raw)
	}
	var nodes []json.RawMessage
	if err := json.Unmarshal(t[1], &nodes); err != nil {
		return nil, fmt.Errorf("%w: group tuple %.60s: members are not a list", ErrContent, raw)
	}
	ids := make([]string, 0, len(nodes))
	for _, n := range nodes {
		id, err := tupleID(n)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// decodeSubTasks reads a chord counter's sub_tasks: a JSON list whose items are result tuples, or
// null for a slot no part has filled yet (counters made by SetChordSize). ids[i] is "" for a null
// slot.
func decodeSubTasks(text string) ([]string, error) {
	var items []json.RawMessage
	if err := json.Unmarshal([]byte(text), &items); err != nil {
		return nil, fmt.Errorf("%w: chord counter sub_tasks %.60q: not a JSON list", ErrContent, text)
	}
	ids := make([]string, len(items))
	for i, it := range items {
		if string(bytes.TrimSpace(it)) == "null" {
			continue
		}
		id, err := tupleID(it)
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	return ids, nil
}

// encodeSubTasks writes ids as sub_tasks: a result tuple per id, null for "".
func encodeSubTasks(ids []string) (string, error) {
	items := make([]any, len(ids))
	for i, id := range ids {
		if id != "" {
			items[i] = resultTuple(id)
		}
	}
	// json.dumps of a list of tuples, as ChordCounter.sub_tasks is written by apply_chord.
	return encodeContent(items)
}

// decodeMetaChildren reads the meta column ({"children": [...]}) and returns its children (nil
// when absent or null).
func decodeMetaChildren(raw json.RawMessage) (json.RawMessage, error) {
	if raw == nil {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: meta %.60s: not a JSON object", ErrContent, raw)
	}
	c := m["children"]
	if c == nil || string(c) == "null" {
		return nil, nil
	}
	return c, nil
}
