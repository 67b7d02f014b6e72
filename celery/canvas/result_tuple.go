package canvas

import "encoding/json"

// AsTuple returns the result handle as Celery's result tuple, what a task returning an
// AsyncResult or GroupResult stores as its result (ResultBase.as_tuple): a task
// [[id, <parent tuple or null>], null], a group [[gid, <parent tuple or null>], [<member tuples>]].
func (r Result) AsTuple() json.RawMessage {
	parent := json.RawMessage("null")
	if r.Parent != nil {
		parent = r.Parent.AsTuple()
	}
	b := []byte(`[[`)
	b = append(b, quote(r.ID)...)
	b = append(b, ", "...)
	b = append(b, parent...)
	b = append(b, "], "...)
	if r.Group == nil {
		return append(b, "null]"...)
	}
	b = append(b, '[')
	for i, id := range r.Group.Results {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, TaskTuple(id)...)
	}
	return append(b, "]]"...)
}
