package creative

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

func TestValidID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"ad-1-0-2", true},
		{"A.b_c-9", true},
		{strings.Repeat("a", MaxIDLen), true},
		{strings.Repeat("a", MaxIDLen+1), false},
		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"a b", false},
		{"<script>", false},
		{"ad-1\n", false},
		{"é", false},
	} {
		if got := ValidID(tc.id); got != tc.want {
			t.Errorf("ValidID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ base, id, want string }{
		{"http://127.0.0.1:5200", "ad-1-0-0", "http://127.0.0.1:5200/creatives/ad-1-0-0.svg"},
		{"http://127.0.0.1:5200/", "ad-1", "http://127.0.0.1:5200/creatives/ad-1.svg"},
		{"https://ads.example.com//", "x", "https://ads.example.com/creatives/x.svg"},
	} {
		if got := URL(tc.base, tc.id); got != tc.want {
			t.Errorf("URL(%q, %q) = %q, want %q", tc.base, tc.id, got, tc.want)
		}
	}
}

// TestSVG: well-formed XML with the right size, the same bytes for the same id, different
// bytes for different ids, the id shown.
func TestSVG(t *testing.T) {
	t.Parallel()
	ids := []string{"ad-0-0-0", "ad-0-0-1", "ad-2999-1-4", "x", strings.Repeat("z", MaxIDLen)}
	seen := map[string]string{}
	for _, id := range ids {
		svg := SVG(id)
		if !bytes.Equal(svg, SVG(id)) {
			t.Errorf("SVG(%q) differs between calls", id)
		}
		if other, dup := seen[string(svg)]; dup {
			t.Errorf("SVG(%q) == SVG(%q)", id, other)
		}
		seen[string(svg)] = id
		d := xml.NewDecoder(bytes.NewReader(svg))
		var root xml.StartElement
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("SVG(%q) is not well-formed XML: %v\n%s", id, err, svg)
			}
			if se, ok := tok.(xml.StartElement); ok && root.Name.Local == "" {
				root = se
			}
		}
		attrs := map[string]string{}
		for _, a := range root.Attr {
			attrs[a.Name.Local] = a.Value
		}
		if root.Name.Local != "svg" || root.Name.Space != "http://www.w3.org/2000/svg" || attrs["width"] != "300" || attrs["height"] != "250" {
			t.Errorf("SVG(%q) root %v %v, want a 300x250 svg element", id, root.Name, attrs)
		}
		if !bytes.Contains(svg, []byte(">"+id+"</text>")) {
			t.Errorf("SVG(%q) does not show its id", id)
		}
	}
}

func TestSVGPanicsOnInvalidID(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("SVG of an invalid id did not panic")
		}
	}()
	SVG("../etc/passwd")
}

// FuzzSVG: for any id ValidID accepts, SVG is well-formed XML showing that id; for any other,
// it panics (callers check ValidID first).
func FuzzSVG(f *testing.F) {
	for _, s := range []string{"ad-1-0-0", "x", "..", "a/b", "<b>", strings.Repeat("9", MaxIDLen)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !ValidID(id) {
			defer func() {
				if recover() == nil {
					t.Fatalf("SVG(%q) of an invalid id did not panic", id)
				}
			}()
			SVG(id)
			return
		}
		svg := SVG(id)
		d := xml.NewDecoder(bytes.NewReader(svg))
		for {
			_, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("SVG(%q) is not well-formed: %v", id, err)
			}
		}
		if !bytes.Contains(svg, []byte(">"+id+"</text>")) {
			t.Fatalf("SVG(%q) does not show its id", id)
		}
	})
}
