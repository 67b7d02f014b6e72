package scoring

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"

	"github.com/forumads/forumads/ads/rkeys"
)

// EncodeList is the value of a rank key: the JSON array of cs ("[]" when empty, never "null").
func EncodeList(cs []rkeys.Candidate) ([]byte, error) {
	if cs == nil {
		cs = []rkeys.Candidate{}
	}
	b, err := json.Marshal(cs)
	if err != nil {
		return nil, fmt.Errorf("encode rank list: %w", err)
	}
	return b, nil
}

// DecodeList reads a rank key's value back, checking that it is a JSON array of candidates with
// positive ids and bid and a CTR in [0, 1]; the error names the first bad element. An empty
// Countries comes back nil, as EncodeList omits it.
func DecodeList(data []byte) ([]rkeys.Candidate, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return nil, fmt.Errorf("rank list: not a JSON array")
	}
	var cs []rkeys.Candidate
	if err := json.Unmarshal(trimmed, &cs); err != nil {
		return nil, fmt.Errorf("rank list: %w", err)
	}
	for i := range cs {
		c := &cs[i]
		switch {
		case c.Ad <= 0:
			return nil, fmt.Errorf("rank list: candidate %d: ad id %d is not positive", i, c.Ad)
		case c.Campaign <= 0:
			return nil, fmt.Errorf("rank list: candidate %d (ad %d): campaign id %d is not positive", i, c.Ad, c.Campaign)
		case c.Advertiser <= 0:
			return nil, fmt.Errorf("rank list: candidate %d (ad %d): advertiser id %d is not positive", i, c.Ad, c.Advertiser)
		case c.Bid <= 0:
			return nil, fmt.Errorf("rank list: candidate %d (ad %d): bid %d is not positive", i, c.Ad, c.Bid)
		case !(c.CTR >= 0 && c.CTR <= 1):
			return nil, fmt.Errorf("rank list: candidate %d (ad %d): ctr %v is not in [0, 1]", i, c.Ad, c.CTR)
		case !(c.EV >= 0) || math.IsInf(c.EV, 0):
			return nil, fmt.Errorf("rank list: candidate %d (ad %d): ev %v is not a non-negative number", i, c.Ad, c.EV)
		}
		if len(c.Countries) == 0 {
			c.Countries = nil
		}
	}
	if cs == nil {
		cs = []rkeys.Candidate{}
	}
	return cs, nil
}
