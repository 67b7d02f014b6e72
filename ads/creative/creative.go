// Package creative draws the sample ads' images: a deterministic 300×250 SVG placeholder per
// ad id, served by the serving program under /creatives/<id>.svg (see [Path]), so the demo and
// every test show images without reaching any host outside the machine. The same id always
// gives the same bytes; different ids get different colours and show their id.
package creative

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"hash/fnv"
	"regexp"
)

// Width and Height are the placeholder's size in pixels (the IAB medium rectangle the embed
// shows).
const (
	Width  = 300
	Height = 250
)

// ContentType is the media type of [SVG]'s output.
const ContentType = "image/svg+xml"

// PathPrefix is where the serving program serves the placeholders: PathPrefix + id + ".svg".
const PathPrefix = "/creatives/"

// MaxIDLen is the longest id a placeholder is drawn for.
const MaxIDLen = 100

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// ValidID reports whether id can name a placeholder: 1 to [MaxIDLen] letters, digits, '.', '_'
// or '-', not "." or "..".
func ValidID(id string) bool {
	return len(id) <= MaxIDLen && idPattern.MatchString(id) && id != "." && id != ".."
}

// Path is the URL path of id's placeholder ("/creatives/<id>.svg").
func Path(id string) string { return PathPrefix + id + ".svg" }

// URL is the absolute URL of id's placeholder under base, the serving program's origin such as
// "http://127.0.0.1:5200" (a trailing slash is ignored).
func URL(base, id string) string {
	for len(base) > 0 && base[len(base)-1] == '/' {
		base = base[:len(base)-1]
	}
	return base + Path(id)
}

// SVG draws id's placeholder. It panics on an id [ValidID] refuses: callers check first.
func SVG(id string) []byte {
	if !ValidID(id) {
		panic(fmt.Sprintf("creative: invalid id %q", id))
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	sum := h.Sum32()
	hue := sum % 360
	hue2 := (hue + 40 + (sum>>9)%80) % 360
	angle := (sum >> 17) % 180
	var name bytes.Buffer
	_ = xml.EscapeText(&name, []byte(id)) // ValidID leaves nothing to escape; kept for safety
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="sample creative %s">`,
		Width, Height, Width, Height, name.String())
	fmt.Fprintf(&b, `<defs><linearGradient id="g" gradientTransform="rotate(%d .5 .5)"><stop offset="0" stop-color="hsl(%d,62%%,52%%)"/><stop offset="1" stop-color="hsl(%d,58%%,38%%)"/></linearGradient>`, angle, hue, hue2)
	fmt.Fprintf(&b, `<pattern id="p" width="24" height="24" patternUnits="userSpaceOnUse" patternTransform="rotate(%d)"><rect width="12" height="24" fill="#fff" fill-opacity=".07"/></pattern></defs>`, 45+angle/4)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="url(#g)"/><rect width="%d" height="%d" fill="url(#p)"/>`, Width, Height, Width, Height)
	fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="%d" fill="#fff" fill-opacity=".16"/>`, 40+sum%220, 40+(sum>>8)%170, 30+(sum>>4)%50)
	fmt.Fprintf(&b, `<text x="150" y="118" font-family="system-ui,sans-serif" font-size="26" font-weight="700" fill="#fff" text-anchor="middle">Sample ad</text>`)
	fmt.Fprintf(&b, `<text x="150" y="150" font-family="ui-monospace,monospace" font-size="14" fill="#fff" fill-opacity=".9" text-anchor="middle">%s</text>`, name.String())
	b.WriteString(`</svg>`)
	return b.Bytes()
}
