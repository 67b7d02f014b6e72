package serving

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTokenRoundTrip(t *testing.T) {
	t.Parallel()
	s, err := newSigner(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Date(2026, 3, 15, 15, 9, 26, 0, time.UTC)
	cases := []token{
		{Kind: kindClick, Ad: 1, Forum: "c", Placement: "sidebar", Price: 0, Expires: exp},
		{Kind: kindImpression, Ad: 1<<63 - 1, Forum: strings.Repeat("z", 64), Placement: "footer", Price: 1<<63 - 1, Expires: exp, Nonce: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{Kind: kindClick, Ad: 123456, Forum: "cars_and-bikes", Placement: "inline", Price: 2500000, Expires: exp, Nonce: [8]byte{255}},
	}
	for _, tk := range cases {
		enc, err := s.Encode(&tk)
		if err != nil {
			t.Fatalf("encode %+v: %v", tk, err)
		}
		if len(enc) > maxTokenLen || strings.ContainsAny(enc, "+/=") {
			t.Fatalf("token %q is not compact URL-safe base64", enc)
		}
		got, err := s.Decode(enc)
		if err != nil || *got != tk {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", tk, got, err)
		}
		t.Logf("%v token for a %d-byte forum: %d characters", tk.Kind, len(tk.Forum), len(enc))
	}
}

func TestTokenEncodeRefusesBadFields(t *testing.T) {
	t.Parallel()
	s, _ := newSigner(testSecret)
	exp := time.Now().Add(time.Hour)
	for _, tk := range []token{
		{Kind: 'x', Ad: 1, Forum: "cars", Placement: "sidebar", Expires: exp},
		{Kind: kindClick, Ad: 0, Forum: "cars", Placement: "sidebar", Expires: exp},
		{Kind: kindClick, Ad: 1, Forum: "cars", Placement: "sidebar", Price: -1, Expires: exp},
		{Kind: kindClick, Ad: 1, Forum: "Cars", Placement: "sidebar", Expires: exp},
		{Kind: kindClick, Ad: 1, Forum: "cars", Placement: "popup", Expires: exp},
		{Kind: kindClick, Ad: 1, Forum: "cars", Placement: "sidebar", Expires: time.Unix(0, 0)},
	} {
		if enc, err := s.Encode(&tk); err == nil {
			t.Errorf("Encode(%+v) = %q, want an error", tk, enc)
		}
	}
}

func TestTokenTamperingIsDetected(t *testing.T) {
	t.Parallel()
	s, _ := newSigner(testSecret)
	enc, err := s.Encode(&token{Kind: kindClick, Ad: 42, Forum: "cars", Placement: "sidebar", Price: 1000, Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b64.DecodeString(enc)
	if err != nil {
		t.Fatal(err)
	}
	// Every single-bit change anywhere in the token is refused.
	for i := range raw {
		for bit := range 8 {
			m := append([]byte(nil), raw...)
			m[i] ^= 1 << bit
			if _, err := s.Decode(b64.EncodeToString(m)); !errors.Is(err, errTokenInvalid) {
				t.Fatalf("byte %d bit %d flipped: %v, want errTokenInvalid", i, bit, err)
			}
		}
	}
	// Under another secret nothing verifies.
	other, _ := newSigner([]byte("a-different-secret-0123456789"))
	if _, err := other.Decode(enc); !errors.Is(err, errTokenInvalid) {
		t.Fatalf("another secret: %v", err)
	}
	if _, err := newSigner([]byte("short")); err == nil {
		t.Fatal("a 5-byte secret was accepted")
	}
}

// FuzzTokenDecode feeds arbitrary strings to the decoder: it never panics, refuses everything but
// what Encode produced, and whatever it accepts re-encodes to the same string.
func FuzzTokenDecode(f *testing.F) {
	s, _ := newSigner(testSecret)
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tk := range []token{
		{Kind: kindClick, Ad: 42, Forum: "cars", Placement: "sidebar", Price: 1000, Expires: exp},
		{Kind: kindImpression, Ad: 7, Forum: "a", Placement: "footer", Expires: exp, Nonce: [8]byte{9}},
	} {
		enc, _ := s.Encode(&tk)
		f.Add(enc)
		f.Add(enc[:len(enc)-1])
		f.Add(enc + "A")
	}
	for _, seed := range []string{"", "A", "====", "hello", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "%00", strings.Repeat("_", 300)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		tk, err := s.Decode(in)
		if err != nil {
			if !errors.Is(err, errTokenInvalid) {
				t.Fatalf("Decode(%q): error %v is not errTokenInvalid", in, err)
			}
			return
		}
		again, err := s.Encode(tk)
		if err != nil || again != in {
			t.Fatalf("Decode(%q) = %+v, which re-encodes to %q (%v)", in, tk, again, err)
		}
	})
}

// FuzzTokenPayload signs arbitrary payloads with the real secret, so the fuzzer reaches the field
// parser behind the MAC: it never panics, and an accepted payload holds valid fields and is
// exactly what Encode writes for them (one encoding per token).
func FuzzTokenPayload(f *testing.F) {
	s, _ := newSigner(testSecret)
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tk := range []token{
		{Kind: kindClick, Ad: 42, Forum: "cars", Placement: "sidebar", Price: 1000, Expires: exp},
		{Kind: kindImpression, Ad: 1<<62 + 5, Forum: strings.Repeat("x", 64), Placement: "header", Expires: exp},
	} {
		p, _ := appendPayload(nil, &tk)
		f.Add(p)
	}
	f.Add([]byte{1, 'c', 0, 0x80, 0x00, 1, 1, 4, 'c', 'a', 'r', 's', 0, 0, 0, 0, 0, 0, 0, 0}) // overlong varint
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		mac := hmac.New(sha256.New, testSecret)
		mac.Write(payload)
		in := b64.EncodeToString(append(append([]byte(nil), payload...), mac.Sum(nil)[:macSize]...))
		tk, err := s.Decode(in)
		if err != nil {
			if !errors.Is(err, errTokenInvalid) {
				t.Fatalf("error %v is not errTokenInvalid", err)
			}
			return
		}
		if (tk.Kind != kindClick && tk.Kind != kindImpression) || tk.Ad <= 0 || tk.Price < 0 || !validSlug(tk.Forum) || placementIndex(tk.Placement) < 0 {
			t.Fatalf("accepted invalid fields %+v", tk)
		}
		again, err := appendPayload(nil, tk)
		if err != nil || string(again) != string(payload) {
			t.Fatalf("payload %x decodes to %+v, which encodes to %x (%v)", payload, tk, again, err)
		}
	})
}
