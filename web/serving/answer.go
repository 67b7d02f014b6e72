package serving

import (
	"encoding/json"
	"strconv"
	"sync"
)

// adFragments are a creative's parts of a /v1/ads answer, JSON-encoded (by encoding/json) once
// when the creative is decoded, so an answer is assembled without encoding them again.
type adFragments struct {
	text  string // "title":…,"body":…
	image string // ,"image_url":… ("" when the creative has no usable image)
	adv   string // ,"advertiser":…
}

func newAdFragments(cr servable) adFragments {
	f := adFragments{text: `"title":` + jsonString(cr.Title) + `,"body":` + jsonString(cr.Body),
		adv: `,"advertiser":` + jsonString(cr.Advertiser)}
	if cr.imageOK {
		f.image = `,"image_url":` + jsonString(cr.ImageURL)
	}
	return f
}

// jsonString is s as encoding/json writes it (HTML characters escaped, invalid UTF-8 replaced).
func jsonString(s string) string {
	b, _ := json.Marshal(s) // a string always encodes
	return string(b)
}

// builtAd is one ad of an answer: its creative's fragments and its signed token URLs' tokens.
type builtAd struct {
	id         int64
	frag       *adFragments
	click, imp string // tokens (base64url: no character needs escaping)
}

// answerBuffers recycles the buffers answers are assembled in.
var answerBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// appendAnswer appends the JSON of a /v1/ads answer (the shape of adsAnswer, byte for byte what
// encoding/json writes for it) to dst.
func appendAnswer(dst []byte, ads []builtAd, images bool, forum, placement string) []byte {
	dst = append(dst, `{"ads":[`...)
	for i, a := range ads {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":`...)
		dst = strconv.AppendInt(dst, a.id, 10)
		dst = append(dst, ',')
		dst = append(dst, a.frag.text...)
		if images {
			dst = append(dst, a.frag.image...)
		}
		dst = append(dst, a.frag.adv...)
		dst = append(dst, `,"click_url":"/v1/click/`...)
		dst = append(dst, a.click...)
		dst = append(dst, `","impression_url":"/v1/impression/`...)
		dst = append(dst, a.imp...)
		dst = append(dst, `"}`...)
	}
	dst = append(dst, `],"forum":`...)
	dst = appendJSONString(dst, forum)
	dst = append(dst, `,"placement":`...)
	dst = appendJSONString(dst, placement)
	return append(dst, '}')
}

// appendJSONString appends s as encoding/json writes it: directly when it holds only characters
// that need no escaping (slugs always do), else through encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return append(dst, jsonString(s)...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
