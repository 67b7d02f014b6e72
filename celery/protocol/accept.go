package protocol

import (
	"fmt"
	"slices"
	"strings"
)

// Content types of the serializers this package knows.
const (
	ContentTypeJSON    = "application/json"
	ContentTypeYAML    = "application/x-yaml"
	ContentTypeMsgpack = "application/x-msgpack"
	// ContentTypePickle is Python's pickle. It is never accepted and never
	// deserialized: unpickling runs code chosen by whoever can publish.
	ContentTypePickle = "application/x-python-serialize"
	// ContentTypeData is what a message without content type counts as. It is
	// always let through the accept check, and its body is raw bytes, which is
	// not a task.
	ContentTypeData = "application/data"
	// ContentTypeText is treated like ContentTypeData.
	ContentTypeText = "application/text"
)

// Accept is the set of content types a consumer accepts, like Celery's
// accept_content setting. The zero value accepts JSON only, which is Celery's
// default.
type Accept struct {
	set   bool
	types []string // MIME types, when set
}

// NewAccept builds an Accept from accept_content entries: serializer names
// ("json", "yaml", "msgpack") or MIME types. Pickle, by name or MIME type, is
// an error: it is never accepted. An unknown name (without '/') is an error,
// as in kombu; an unknown MIME type is accepted but has no decoder, so such
// messages fail as ErrUnknownMessage. An empty list accepts nothing but the
// raw application/data and application/text types, which kombu always lets
// through.
func NewAccept(contentTypes []string) (Accept, error) {
	a := Accept{set: true, types: make([]string, 0, len(contentTypes))}
	for _, c := range contentTypes {
		var mime string
		switch c {
		case "json":
			mime = ContentTypeJSON
		case "yaml":
			mime = ContentTypeYAML
		case "msgpack":
			mime = ContentTypeMsgpack
		case "pickle", ContentTypePickle:
			return Accept{}, fmt.Errorf("protocol: accept %q: pickle is never accepted (it executes code from the message)", c)
		default:
			if !strings.Contains(c, "/") {
				return Accept{}, fmt.Errorf("protocol: accept %q: unknown serializer name", c)
			}
			mime = c
		}
		if !slices.Contains(a.types, mime) {
			a.types = append(a.types, mime)
		}
	}
	return a, nil
}

// Allows reports whether a message of this content type passes the accept
// check. An empty content type counts as application/data.
func (a Accept) Allows(contentType string) bool {
	switch contentType {
	case "", ContentTypeData, ContentTypeText:
		return true
	case ContentTypePickle:
		return false
	}
	if !a.set {
		return contentType == ContentTypeJSON
	}
	return slices.Contains(a.types, contentType)
}
