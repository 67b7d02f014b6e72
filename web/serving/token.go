package serving

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/forumads/forumads/ads/rkeys"
)

// tokenKind is what a token lets its bearer count.
type tokenKind byte

// The token kinds.
const (
	kindClick      tokenKind = 'c'
	kindImpression tokenKind = 'i'
)

func (k tokenKind) String() string {
	switch k {
	case kindClick:
		return "click"
	case kindImpression:
		return "impression"
	default:
		return fmt.Sprintf("kind(%d)", byte(k))
	}
}

// token is what a click or impression URL carries: which ad was shown where, at what price, until
// when. It is signed with HMAC-SHA256, so a client can neither forge one nor change a field.
type token struct {
	Kind      tokenKind
	Ad        int64
	Forum     string
	Placement string
	// Price is the candidate's bid in micros: the spend a click adds.
	Price int64
	// Expires is when the token stops being accepted (whole seconds).
	Expires time.Time
	// Nonce makes every token unique.
	Nonce [8]byte
}

// errTokenInvalid is the error of a token that fails verification, whatever the detail, so the
// answer tells a forger nothing.
var errTokenInvalid = errors.New("invalid token")

const (
	tokenVersion = 1
	macSize      = 16 // bytes of HMAC-SHA256 kept: 128 bits
	// maxTokenLen is the longest encoded token accepted (the longest a valid one can be is far
	// shorter: a 64-byte forum gives about 140 characters).
	maxTokenLen = 256
	minSecret   = 16
	maxExpiry   = 1 << 40 // unix seconds: far beyond any TTL
)

var b64 = base64.RawURLEncoding.Strict()

// signer encodes and verifies tokens under one secret. It is safe for concurrent use.
type signer struct {
	pool sync.Pool // of hash.Hash (HMAC-SHA256 keyed with the secret)
}

func newSigner(secret []byte) (*signer, error) {
	if len(secret) < minSecret {
		return nil, fmt.Errorf("serving: Secret must be at least %d bytes, got %d", minSecret, len(secret))
	}
	key := slices.Clone(secret)
	s := &signer{}
	s.pool.New = func() any { return hmac.New(sha256.New, key) }
	return s, nil
}

func (s *signer) mac(dst, msg []byte) []byte {
	h := s.pool.Get().(hash.Hash)
	h.Reset()
	h.Write(msg)
	dst = h.Sum(dst)
	s.pool.Put(h)
	return dst
}

// placementIndex is p's position in rkeys.Placements, or -1.
func placementIndex(p string) int {
	for i, q := range rkeys.Placements {
		if q == p {
			return i
		}
	}
	return -1
}

// appendPayload appends t's signed fields: version, kind, placement index, ad, price, expiry,
// forum (length-prefixed), nonce.
func appendPayload(b []byte, t *token) ([]byte, error) {
	if t.Kind != kindClick && t.Kind != kindImpression {
		return nil, fmt.Errorf("token: unknown kind %v", t.Kind)
	}
	pi := placementIndex(t.Placement)
	if pi < 0 {
		return nil, fmt.Errorf("token: unknown placement %q", t.Placement)
	}
	if t.Ad <= 0 || t.Price < 0 {
		return nil, fmt.Errorf("token: ad %d must be positive and price %d not negative", t.Ad, t.Price)
	}
	if !validSlug(t.Forum) {
		return nil, fmt.Errorf("token: forum %q is not a slug", t.Forum)
	}
	exp := t.Expires.Unix()
	if exp <= 0 || exp > maxExpiry {
		return nil, fmt.Errorf("token: expiry %v is out of range", t.Expires)
	}
	b = append(b, tokenVersion, byte(t.Kind), byte(pi))
	b = binary.AppendUvarint(b, uint64(t.Ad))
	b = binary.AppendUvarint(b, uint64(t.Price))
	b = binary.AppendUvarint(b, uint64(exp))
	b = append(b, byte(len(t.Forum)))
	b = append(b, t.Forum...)
	return append(b, t.Nonce[:]...), nil
}

// Encode returns t as a compact URL-safe string (unpadded base64url of the fields and a 128-bit
// MAC).
func (s *signer) Encode(t *token) (string, error) {
	var buf [160]byte
	b, err := appendPayload(buf[:0], t)
	if err != nil {
		return "", err
	}
	full := s.mac(b, b)
	return b64.EncodeToString(full[:len(b)+macSize]), nil
}

// Decode verifies s and returns its token. Anything but a token Encode produced under the same
// secret is errTokenInvalid (wrapped with the reason, for the log). Expiry is not checked here.
func (s *signer) Decode(str string) (*token, error) {
	if len(str) == 0 || len(str) > maxTokenLen {
		return nil, fmt.Errorf("%w: length %d", errTokenInvalid, len(str))
	}
	// The base64 decoder skips CR and LF: a token with line breaks would decode to (and count as)
	// another token's text. Only the canonical text is a token.
	if strings.ContainsAny(str, "\r\n") {
		return nil, fmt.Errorf("%w: line break in token", errTokenInvalid)
	}
	var buf [maxTokenLen]byte
	n, err := b64.Decode(buf[:], []byte(str))
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url: %v", errTokenInvalid, err)
	}
	raw := buf[:n]
	if len(raw) <= macSize {
		return nil, fmt.Errorf("%w: too short", errTokenInvalid)
	}
	msg, sum := raw[:len(raw)-macSize], raw[len(raw)-macSize:]
	var mbuf [sha256.Size]byte
	if !hmac.Equal(s.mac(mbuf[:0], msg)[:macSize], sum) {
		return nil, fmt.Errorf("%w: bad signature", errTokenInvalid)
	}
	t, err := parsePayload(msg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errTokenInvalid, err)
	}
	return t, nil
}

// parsePayload reads what appendPayload wrote, refusing anything appendPayload cannot produce.
func parsePayload(b []byte) (*token, error) {
	if len(b) < 3 {
		return nil, errors.New("truncated header")
	}
	if b[0] != tokenVersion {
		return nil, fmt.Errorf("version %d", b[0])
	}
	t := &token{Kind: tokenKind(b[1])}
	if t.Kind != kindClick && t.Kind != kindImpression {
		return nil, fmt.Errorf("kind %d", b[1])
	}
	if int(b[2]) >= len(rkeys.Placements) {
		return nil, fmt.Errorf("placement %d", b[2])
	}
	t.Placement = rkeys.Placements[b[2]]
	b = b[3:]
	var vals [3]uint64
	for i := range vals {
		v, n := binary.Uvarint(b)
		if n <= 0 || n != uvarintLen(v) {
			return nil, fmt.Errorf("field %d: bad varint", i)
		}
		vals[i], b = v, b[n:]
	}
	if vals[0] == 0 || vals[0] > 1<<63-1 || vals[1] > 1<<63-1 || vals[2] == 0 || vals[2] > maxExpiry {
		return nil, errors.New("number out of range")
	}
	t.Ad, t.Price, t.Expires = int64(vals[0]), int64(vals[1]), time.Unix(int64(vals[2]), 0).UTC()
	if len(b) < 1 || len(b) != 1+int(b[0])+len(t.Nonce) {
		return nil, errors.New("bad length")
	}
	t.Forum = string(b[1 : 1+b[0]])
	if !validSlug(t.Forum) {
		return nil, errors.New("forum is not a slug")
	}
	copy(t.Nonce[:], b[1+b[0]:])
	return t, nil
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}
