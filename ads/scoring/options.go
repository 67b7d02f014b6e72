package scoring

import (
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/forumads/forumads/ads/rkeys"
)

// Defaults of [Options].
const (
	// DefaultWindow is how far back clicks and impressions count towards an ad's CTR.
	DefaultWindow = 7 * 24 * time.Hour
	// DefaultPriorStrength is the prior's weight, in impressions.
	DefaultPriorStrength = 200.0
	// FallbackPriorMean is the CTR the prior mean is smoothed towards (the prior mean with no data).
	FallbackPriorMean = 0.01
)

// Options tune a scoring run. The zero value uses every default.
type Options struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Window is the stats window for the CTR (default DefaultWindow).
	Window time.Duration
	// PriorMean fixes the prior's mean CTR, in (0, 1). Zero derives it from the window's data:
	// (global clicks + FallbackPriorMean·S) / (global impressions + S), S the prior strength.
	PriorMean float64
	// PriorStrength is the prior's weight in impressions, α+β (default DefaultPriorStrength).
	PriorStrength float64
	// MaxCandidates is the longest list written (default rkeys.MaxCandidates).
	MaxCandidates int
	// Logger receives warnings about bad data and one line per run (default: discarded).
	Logger *slog.Logger

	// beforeExec, when set (by tests), runs inside the swap's WATCH, just before MULTI/EXEC.
	beforeExec func(attempt int)
}

func (o Options) withDefaults() (Options, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	switch {
	case o.Window < 0:
		return o, fmt.Errorf("scoring options: Window %v is negative", o.Window)
	case o.Window == 0:
		o.Window = DefaultWindow
	}
	switch {
	case o.PriorStrength < 0 || math.IsNaN(o.PriorStrength) || math.IsInf(o.PriorStrength, 0):
		return o, fmt.Errorf("scoring options: PriorStrength %v must be a positive number", o.PriorStrength)
	case o.PriorStrength == 0:
		o.PriorStrength = DefaultPriorStrength
	}
	if o.PriorMean < 0 || o.PriorMean >= 1 || math.IsNaN(o.PriorMean) {
		return o, fmt.Errorf("scoring options: PriorMean %v must be in (0, 1), or 0 for the data's", o.PriorMean)
	}
	switch {
	case o.MaxCandidates < 0:
		return o, fmt.Errorf("scoring options: MaxCandidates %d is negative", o.MaxCandidates)
	case o.MaxCandidates == 0:
		o.MaxCandidates = rkeys.MaxCandidates
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
