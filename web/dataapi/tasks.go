package dataapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/web/httpx"
)

// ImportTask is the task POST /v1/imports sends.
const ImportTask = "ads.import_feed"

// maxSource bounds an import's source.
const maxSource = 2048

// ImportBody is the body of POST /v1/imports.
type ImportBody struct {
	// Source is a path on the workers, a file:// URL or an http(s):// URL (see ads.import_feed).
	Source Opt[string] `json:"source"`
}

// Accepted is the answer of POST /v1/imports.
type Accepted struct {
	TaskID string `json:"task_id"`
}

// checkSource validates an import source: text without control characters, at most 2048
// characters; with a scheme, file:// or http(s):// with a host.
func checkSource(v string) (string, error) {
	v, err := text("source", v, 1, maxSource, false)
	if err != nil {
		return "", err
	}
	if i := strings.Index(v, "://"); i >= 0 {
		u, err := url.Parse(v)
		if err != nil {
			return "", httpx.FieldError("source", "not a valid URL: %s", quote(v))
		}
		switch strings.ToLower(u.Scheme) {
		case "http", "https":
			if u.Hostname() == "" {
				return "", httpx.FieldError("source", "an http(s):// URL needs a host, got %s", quote(v))
			}
		case "file":
		default:
			return "", httpx.FieldError("source", "must be a path, a file:// URL or an http(s):// URL, got %s", quote(v))
		}
	}
	return v, nil
}

// handleImport enqueues ads.import_feed with the source as its one argument and answers 202 with
// the task id (Location: the task's status).
func (a *api) handleImport(w http.ResponseWriter, r *http.Request) {
	var b ImportBody
	if err := decodeBody(w, r, &b); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := required("source", b.Source, "a path, a file:// URL or an http(s):// URL of a feed"); err != nil {
		a.fail(w, r, err)
		return
	}
	src, err := checkSource(b.Source.V)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.client == nil {
		a.fail(w, r, httpx.Errorf(http.StatusServiceUnavailable, "imports_disabled", "imports are not configured on this server (no broker)"))
		return
	}
	arg, err := json.Marshal(src)
	if err != nil {
		a.fail(w, r, fmt.Errorf("import: %w", err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.publishTimeout)
	defer cancel()
	res, err := a.client.SendRaw(ctx, ImportTask, []json.RawMessage{arg}, nil)
	if err != nil {
		a.fail(w, r, unavailable("the task broker", err))
		return
	}
	a.log.Info("import queued", "task_id", res.ID, "source", src)
	w.Header().Set("Location", "/v1/tasks/"+res.ID)
	httpx.WriteJSON(w, http.StatusAccepted, Accepted{TaskID: res.ID})
}

// Progress is a running import's position.
type Progress struct {
	Current int64 `json:"current"`
	Total   int64 `json:"total"`
}

// TaskFailure is why a task failed (never its traceback).
type TaskFailure struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// TaskStatus is the answer of GET /v1/tasks/{id}, read from the result backend as Celery's
// AsyncResult reads it: an unknown id is PENDING.
type TaskStatus struct {
	TaskID   string          `json:"task_id"`
	State    string          `json:"state"`
	Progress *Progress       `json:"progress"`
	Result   json.RawMessage `json:"result"` // the task's return value once SUCCESS
	Error    *TaskFailure    `json:"error"`  // FAILURE, REVOKED, RETRY
}

// isTaskID accepts what a Celery task id looks like: 1-255 characters of A-Z, a-z, 0-9, '.', '_',
// ':' and '-'.
func isTaskID(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && c != '.' && c != '_' && c != ':' && c != '-' {
			return false
		}
	}
	return true
}

func (a *api) handleTask(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !isTaskID(id) {
		a.fail(w, r, httpx.Errorf(http.StatusBadRequest, "invalid_id", "a task id is 1-255 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'; got %s", quote(id)))
		return
	}
	if a.results == nil {
		a.fail(w, r, httpx.Errorf(http.StatusServiceUnavailable, "results_disabled", "task results are not configured on this server"))
		return
	}
	meta, err := a.results.Get(r.Context(), id)
	if err != nil {
		a.fail(w, r, unavailable("the result backend", err))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, taskStatus(id, meta))
}

// taskStatus turns a stored meta into the answer.
func taskStatus(id string, m protocol.ResultMeta) TaskStatus {
	st := TaskStatus{TaskID: id, State: m.Status}
	if st.State == "" {
		st.State = protocol.StatePending
	}
	switch {
	case st.State == protocol.StateSuccess:
		if len(bytes.TrimSpace(m.Result)) > 0 {
			st.Result = m.Result
		}
	case protocol.IsExceptionState(st.State):
		st.Error = failure(m.Result)
	case st.State == "PROGRESS":
		var p struct {
			Current *int64 `json:"current"`
			Total   *int64 `json:"total"`
		}
		if json.Unmarshal(m.Result, &p) == nil && p.Current != nil && p.Total != nil {
			st.Progress = &Progress{Current: *p.Current, Total: *p.Total}
		}
	}
	return st
}

// failure reads the exception a FAILURE, REVOKED or RETRY result holds.
func failure(raw json.RawMessage) *TaskFailure {
	var e protocol.ExceptionInfo
	if err := json.Unmarshal(raw, &e); err != nil {
		return &TaskFailure{Type: "Exception", Message: "the task failed (its error could not be read)"}
	}
	parts := make([]string, 0, len(e.Message))
	for _, m := range e.Message {
		if s, ok := m.(string); ok {
			parts = append(parts, s)
		} else {
			b, _ := json.Marshal(m)
			parts = append(parts, string(b))
		}
	}
	msg := strings.Join(parts, ", ")
	if utf8.RuneCountInString(msg) > 2000 {
		msg = string([]rune(msg)[:2000]) + "…"
	}
	return &TaskFailure{Type: e.Type, Message: msg}
}
