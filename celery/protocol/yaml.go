package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// yamlToJSON converts a YAML body (one document, as kombu's yaml.safe_load
// reads it) to JSON in Python's format. Mapping keys must be strings;
// timestamps are kept as their text; binary, merge keys, custom tags and
// non-finite floats have no JSON form and are errors.
func yamlToJSON(body []byte) ([]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(body))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return []byte("null"), nil // an empty stream loads as None
		}
		return nil, fmt.Errorf("yaml: %w", err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return nil, errors.New("yaml: expected a single document")
	}
	c := yamlConv{budget: 64*len(body) + 1024}
	return c.node(make([]byte, 0, len(body)), &doc, 0)
}

type yamlConv struct {
	budget int // node visits left; bounds alias expansion ("billion laughs")
}

func (c *yamlConv) node(dst []byte, n *yaml.Node, depth int) ([]byte, error) {
	if depth > maxNesting {
		return dst, errors.New("yaml: nesting too deep")
	}
	if c.budget--; c.budget < 0 {
		return dst, errors.New("yaml: document expands too much")
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return append(dst, "null"...), nil
		}
		return c.node(dst, n.Content[0], depth)
	case yaml.AliasNode:
		if n.Alias == nil {
			return dst, errors.New("yaml: unresolved alias")
		}
		return c.node(dst, n.Alias, depth+1)
	case yaml.SequenceNode:
		dst = append(dst, '[')
		for i, e := range n.Content {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			var err error
			if dst, err = c.node(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case yaml.MappingNode:
		dst = append(dst, '{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			k := n.Content[i]
			for k.Kind == yaml.AliasNode && k.Alias != nil {
				k = k.Alias
			}
			if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
				return dst, errors.New("yaml: mapping key is not a string")
			}
			dst = appendPyString(dst, k.Value)
			dst = append(dst, ": "...)
			var err error
			if dst, err = c.node(dst, n.Content[i+1], depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case yaml.ScalarNode:
		return yamlScalar(dst, n)
	default:
		return dst, errors.New("yaml: unexpected node")
	}
}

func yamlScalar(dst []byte, n *yaml.Node) ([]byte, error) {
	switch tag := n.ShortTag(); tag {
	case "!!str", "!!timestamp":
		return appendPyString(dst, n.Value), nil
	case "!!null":
		return append(dst, "null"...), nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return dst, fmt.Errorf("yaml: %w", err)
		}
		return strconv.AppendBool(dst, b), nil
	case "!!int":
		if v, ok := new(big.Int).SetString(n.Value, 0); ok {
			return v.Append(dst, 10), nil
		}
		var v any
		if err := n.Decode(&v); err == nil {
			switch x := v.(type) {
			case int:
				return strconv.AppendInt(dst, int64(x), 10), nil
			case int64:
				return strconv.AppendInt(dst, x, 10), nil
			case uint64:
				return strconv.AppendUint(dst, x, 10), nil
			}
		}
		return dst, fmt.Errorf("yaml: unsupported integer %q", n.Value)
	case "!!float":
		if n.Style&yaml.TaggedStyle == 0 && isDecimalInt(n.Value) {
			// yaml.v3 resolves integers beyond 64 bits as floats; PyYAML
			// reads them as ints.
			if v, ok := new(big.Int).SetString(n.Value, 10); ok {
				return v.Append(dst, 10), nil
			}
		}
		var f float64
		if err := n.Decode(&f); err != nil {
			return dst, fmt.Errorf("yaml: %w", err)
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return dst, errors.New("yaml: non-finite float has no JSON form")
		}
		return appendPyFloat(dst, f), nil
	default:
		return dst, fmt.Errorf("yaml: values tagged %s have no JSON form", tag)
	}
}

// jsonToYAML writes a valid JSON value as a YAML document that PyYAML's
// safe_load reads back to the same value: strings double-quoted, floats with a
// '.' in the mantissa (YAML 1.1 needs it), mappings in key order with
// duplicates merged.
func jsonToYAML(raw []byte) ([]byte, error) {
	n, err := jsonToYAMLNode(raw, 0)
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(n)
}

func jsonToYAMLNode(raw []byte, depth int) (*yaml.Node, error) {
	if depth > maxNesting {
		return nil, errors.New("yaml: nesting too deep")
	}
	scalar := func(tag, value string, style yaml.Style) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value, Style: style}
	}
	switch jsonKind(raw) {
	case 'n':
		return scalar("!!null", "null", 0), nil
	case 't':
		return scalar("!!bool", "true", 0), nil
	case 'f':
		return scalar("!!bool", "false", 0), nil
	case '"':
		return scalar("!!str", unquote(raw), yaml.DoubleQuotedStyle), nil
	case '[':
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		err := eachElem(raw, func(e []byte) error {
			c, err := jsonToYAMLNode(e, depth+1)
			n.Content = append(n.Content, c)
			return err
		})
		return n, err
	case '{':
		members, err := dedupMembers(raw)
		if err != nil {
			return nil, err
		}
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, m := range members {
			v, err := jsonToYAMLNode(m.val, depth+1)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, scalar("!!str", m.key, yaml.DoubleQuotedStyle), v)
		}
		return n, nil
	default:
		_, isInt, _ := scanNumber(raw, 0)
		if isInt {
			return scalar("!!int", string(appendPyNumber(nil, raw, true)), 0), nil
		}
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return nil, fmt.Errorf("yaml: number %s is out of range", raw)
		}
		s := string(appendPyFloat(nil, f))
		if e := strings.IndexByte(s, 'e'); e >= 0 && !strings.Contains(s[:e], ".") {
			s = s[:e] + ".0" + s[e:]
		}
		return scalar("!!float", s, 0), nil
	}
}

// isDecimalInt reports whether s is [-+]?[0-9]+.
func isDecimalInt(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	if s == "" || len(s) > 4300 { // Python refuses ints longer than 4300 digits
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
