package schedule

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrNoSolarEvent is returned by [Solar.NextEvent] when the event does not happen within
// [SolarSearchDays] after the given instant (the sun never crosses the event's horizon there: polar
// day or night lasting longer than that, or an event Celery's horizons make impossible at that
// latitude).
var ErrNoSolarEvent = errors.New("no solar event")

// SolarSearchDays is how far ahead [Solar.NextEvent] looks, day by day, before giving up.
const SolarSearchDays = 400

// solarEvent is one of celery.schedules.solar's events: the horizon (degrees), whether the
// event is a rising, a setting or the transit, and whether the sun's centre (rather than its
// upper limb) must reach the horizon.
type solarEvent struct {
	horizon   float64
	kind      int
	useCenter bool
}

const (
	rising = iota
	setting
	transit
)

// solarEvents are Celery 5.2's _horizons, _methods and _use_center_l. dusk_astronomical's horizon
// is +18 degrees in Celery (not -18): kept, so the Go beat fires when a Python beat would.
var solarEvents = map[string]solarEvent{
	"dawn_astronomical": {-18, rising, true},
	"dawn_nautical":     {-12, rising, true},
	"dawn_civil":        {-6, rising, true},
	"sunrise":           {-34.0 / 60, rising, false},
	"solar_noon":        {0, transit, false},
	"sunset":            {-34.0 / 60, setting, false},
	"dusk_civil":        {-6, setting, true},
	"dusk_nautical":     {-12, setting, true},
	"dusk_astronomical": {18, setting, true},
}

// SolarEvents returns the event names ParseSolar accepts, sorted.
func SolarEvents() []string {
	names := make([]string, 0, len(solarEvents))
	for n := range solarEvents {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Solar is celery.schedules.solar: a run at every occurrence of a solar event (sunrise, dusk,
// ...) seen from a place on Earth at sea level. Times are computed in UTC from the sun's
// apparent position (Meeus' algorithms), the way PyEphem, which Celery uses, finds them: a
// rising or setting is when the sun's hour angle reaches the one at which it crosses the event's
// horizon (no refraction: Celery sets pressure 0 and folds refraction into the -0:34 horizon of
// sunrise and sunset, which also count the sun's upper limb). Results agree with PyEphem to a
// few seconds.
type Solar struct {
	event    string
	lat, lon float64
	ev       solarEvent
}

// ParseSolar checks the event name and the place as Celery's solar() does: latitude between -90
// and 90, longitude between -180 and 180 (degrees, north and east positive).
func ParseSolar(event string, lat, lon float64) (*Solar, error) {
	ev, ok := solarEvents[event]
	if !ok {
		return nil, fmt.Errorf("%w: solar event %q is invalid, must be one of %s", ErrInvalid, event, strings.Join(SolarEvents(), ", "))
	}
	if math.IsNaN(lat) || lat < -90 || lat > 90 {
		return nil, fmt.Errorf("%w: solar latitude %v is invalid, must be between -90 and 90", ErrInvalid, lat)
	}
	if math.IsNaN(lon) || lon < -180 || lon > 180 {
		return nil, fmt.Errorf("%w: solar longitude %v is invalid, must be between -180 and 180", ErrInvalid, lon)
	}
	return &Solar{event: event, lat: lat, lon: lon, ev: ev}, nil
}

// Event is the solar event's name.
func (s *Solar) Event() string { return s.event }

// Latitude is the observer's latitude in degrees.
func (s *Solar) Latitude() float64 { return s.lat }

// Longitude is the observer's longitude in degrees.
func (s *Solar) Longitude() float64 { return s.lon }

// String is Celery's repr: <solar: sunrise at latitude 52.52, longitude: 13.4>.
func (s *Solar) String() string {
	return fmt.Sprintf("<solar: %s at latitude %s, longitude: %s>", s.event, pyFloat(s.lat), pyFloat(s.lon))
}

// pyFloat formats f as Python's repr of a float does for ordinary values (13 -> 13.0).
func pyFloat(f float64) string {
	t := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(t, ".eEn") {
		t += ".0"
	}
	return t
}

// Next is the first occurrence of the event strictly after after, or the zero time when it does
// not happen within SolarSearchDays (see NextEvent for the reason).
func (s *Solar) Next(after time.Time) time.Time {
	t, err := s.NextEvent(after)
	if err != nil {
		return time.Time{}
	}
	return t
}

// solarMinYear and solarMaxYear bound the instants NextEvent computes for: Meeus' series are
// good for centuries around 2000, not for arbitrary ones.
const solarMinYear, solarMaxYear = 1000, 3000

// NextEvent is the first occurrence of the event strictly after after, in UTC to the
// millisecond. Where the sun does not cross the event's horizon during a day (polar day or
// night), the search goes on from the next solar midnight (the sun's antitransit), day by day;
// after SolarSearchDays without an occurrence it returns an error wrapping ErrNoSolarEvent.
func (s *Solar) NextEvent(after time.Time) (time.Time, error) {
	if y := after.UTC().Year(); y < solarMinYear || y >= solarMaxYear {
		return time.Time{}, fmt.Errorf("%w: %s: %v is outside the years %d-%d", ErrNoSolarEvent, s, after, solarMinYear, solarMaxYear)
	}
	start := toDays(after)
	limit := start + SolarSearchDays
	d := start
	for d < limit {
		var (
			t  float64
			ok bool
		)
		if s.ev.kind == transit {
			t, ok = s.transitFrom(d, 0), true
		} else {
			t, ok = s.riseSetFrom(d)
		}
		if ok {
			r := fromDays(t)
			if r.After(after) {
				return r, nil
			}
			// Rounded onto after itself: the next one is about a day later.
			d = t + 1.0/1440
			continue
		}
		// Circumpolar during this circuit: look again from a minute after the next solar
		// midnight, as Celery re-checks.
		next := s.transitFrom(d, math.Pi) + 1.0/1440
		if next <= d {
			next = d + 1.0/1440
		}
		d = next
	}
	return time.Time{}, fmt.Errorf("%w: %s: none within %d days after %s", ErrNoSolarEvent, s, SolarSearchDays, after.UTC().Format(time.RFC3339))
}

// Days are counted from J2000.0 (2000-01-01 12:00 UT), in UT.
var j2000 = time.Date(2000, 1, 1, 12, 0, 0, 0, time.UTC)

func toDays(t time.Time) float64 {
	return (float64(t.Unix()-j2000.Unix()) + float64(t.Nanosecond())/1e9) / 86400
}

// fromDays is the instant d, to the millisecond (beat's slots are milliseconds: beat_slot).
func fromDays(d float64) time.Time {
	sec := d * 86400
	whole := math.Floor(sec)
	ms := math.Round((sec - whole) * 1e3)
	return time.Unix(j2000.Unix()+int64(whole), int64(ms)*1e6).UTC()
}

const (
	deg = math.Pi / 180
	tau = 2 * math.Pi
	// precision is PyEphem's default_newton_precision, a tenth of a second (in days): an event
	// less than that after the start is the one the start is at, and the search moves on to
	// the next (so Next(previous event) is the following one).
	precision = 0.1 / 86400
	// converged is how close the searches take an event (in days, about 9 µs): far below
	// precision, so searches from different starts agree on an event's time.
	converged = 1e-10
	// maxSteps bounds a search; one that has not converged by then counts as converged when its
	// last step is below precision.
	maxSteps = 200
)

// sunPos is the sun's apparent place seen from Earth's centre at day d (UT): right ascension and
// declination (radians), Greenwich apparent sidereal time (radians) and distance (AU).
type sunPos struct {
	ra, dec, gast, dist float64
}

// deltaT is TT-UT in seconds (Espenak and Meeus' polynomial for 2005-2050; its error there, some
// seconds, moves the sun by less than 0.0001 degree; centuries away it is off by up to an hour,
// 0.04 degree of solar longitude, seconds of event time).
func deltaT(d float64) float64 {
	y := 2000 + d/365.25
	u := y - 2000
	return 62.92 + 0.32217*u + 0.005589*u*u
}

// sunAt is Meeus, Astronomical Algorithms, chapter 25 (low accuracy sun, with nutation and
// aberration), chapter 22 (nutation) and chapter 12 (sidereal time).
func sunAt(d float64) sunPos {
	T := (d + deltaT(d)/86400) / 36525 // TT centuries
	Tu := d / 36525                    // UT centuries
	L0 := 280.46646 + 36000.76983*T + 0.0003032*T*T
	M := (357.52911 + 35999.05029*T - 0.0001537*T*T) * deg
	e := 0.016708634 - 0.000042037*T - 0.0000001267*T*T
	C := (1.914602-0.004817*T-0.000014*T*T)*math.Sin(M) + (0.019993-0.000101*T)*math.Sin(2*M) + 0.000289*math.Sin(3*M)
	// Perturbations by Venus (A, B), Jupiter (C), the Moon (D) and a long-period term (E), from
	// Meeus' Astronomical Formulae for Calculators (arguments counted from 1900.0).
	T0 := T + 1
	A := (153.23 + 22518.7541*T0) * deg
	B := (216.57 + 45037.5082*T0) * deg
	Cj := (312.69 + 32964.3577*T0) * deg
	D := (350.74 + 445267.1142*T0 - 0.00144*T0*T0) * deg
	E := (231.19 + 20.20*T0) * deg
	H := (353.40 + 65928.7155*T0) * deg
	trueLon := L0 + C + 0.00134*math.Cos(A) + 0.00154*math.Cos(B) + 0.00200*math.Cos(Cj) + 0.00179*math.Sin(D) + 0.00178*math.Sin(E)
	v := M + C*deg
	R := 1.000001018*(1-e*e)/(1+e*math.Cos(v)) + 0.00000543*math.Sin(A) + 0.00001575*math.Sin(B) + 0.00001627*math.Sin(Cj) + 0.00003076*math.Cos(D) + 0.00000927*math.Sin(H)
	omega := (125.04452 - 1934.136261*T + 0.0020708*T*T) * deg
	Ls := (280.4665 + 36000.7698*T) * deg
	Lm := (218.3165 + 481267.8813*T) * deg
	dpsi := (-17.20*math.Sin(omega) - 1.32*math.Sin(2*Ls) - 0.23*math.Sin(2*Lm) + 0.21*math.Sin(2*omega)) / 3600 // degrees
	deps := (9.20*math.Cos(omega) + 0.57*math.Cos(2*Ls) + 0.10*math.Cos(2*Lm) - 0.09*math.Cos(2*omega)) / 3600
	eps0 := 23.0 + 26.0/60 + (21.448-46.8150*T-0.00059*T*T+0.001813*T*T*T)/3600
	eps := (eps0 + deps) * deg
	lambda := (trueLon + dpsi - 20.4898/3600/R) * deg
	ra := math.Atan2(math.Cos(eps)*math.Sin(lambda), math.Cos(lambda))
	dec := math.Asin(math.Sin(eps) * math.Sin(lambda))
	gmst := 280.46061837 + 360.98564736629*d + 0.000387933*Tu*Tu - Tu*Tu*Tu/38710000
	gast := math.Mod(gmst+dpsi*math.Cos(eps), 360) * deg
	return sunPos{ra: ra, dec: dec, gast: gast, dist: R}
}

// hourAngle is the sun's local hour angle at day d, in (-π, π].
func (s *Solar) hourAngle(p sunPos) float64 {
	return plusMinusPi(p.gast + s.lon*deg - p.ra)
}

// plusMinusPi normalises an angle into [-π, π).
func plusMinusPi(a float64) float64 {
	a = math.Mod(a+math.Pi, tau)
	if a < 0 {
		a += tau
	}
	return a - math.Pi
}

// transitFrom finds the next time after d at which the sun's hour angle is offset (0: transit,
// π: antitransit), by the secant method from the estimate one sidereal turn gives.
func (s *Solar) transitFrom(d, offset float64) float64 {
	f := func(t float64) float64 { return plusMinusPi(offset - s.hourAngle(sunAt(t))) }
	move := math.Mod(offset-s.hourAngle(sunAt(d)), tau)
	if move < 0 {
		move += tau
	}
	if move/tau < precision {
		move = tau
	}
	x0 := d + move/tau
	x1 := x0 + 1.0/1440
	f0, f1 := f(x0), f(x1)
	for i := 0; i < maxSteps && f1 != 0 && math.Abs(x1-x0) > converged && f1 != f0; i++ {
		x0, x1 = x1, x1+(x1-x0)/(f0/f1-1)
		f0, f1 = f1, f(x1)
	}
	return x1
}

// riseSetFrom follows PyEphem's Observer._find_rise_or_set from d: step to where the hour angle
// equals the one at which the sun crosses the horizon, recomputing the sun's place, until the
// step is below converged. ok is false when the sun does not cross the horizon that circuit.
func (s *Solar) riseSetFrom(d float64) (t float64, ok bool) {
	lat := s.lat * deg
	first := true
	t = d
	for i := 0; i < maxSteps; i++ {
		p := sunAt(t)
		h := s.ev.horizon * deg
		if !s.ev.useCenter {
			h -= sunRadius(p.dist)
		}
		// ephem's places are topocentric: the sun's parallax lowers it by about 8.8" there.
		h += sunParallax(p.dist) * math.Cos(h)
		arg := (math.Sin(h) - math.Sin(lat)*math.Sin(p.dec)) / (math.Cos(lat) * math.Cos(p.dec))
		var abs float64
		circumpolar := false
		switch {
		case arg < -1 || math.IsNaN(arg):
			abs, circumpolar = math.Pi+1e-15, true
		case arg > 1:
			abs, circumpolar = -1e-15, true
		default:
			abs = math.Acos(arg)
		}
		target := abs
		if s.ev.kind == rising {
			target = -abs
		}
		diff := target - s.hourAngle(p)
		var bump float64
		if first {
			diff = math.Mod(diff, tau)
			if diff < 0 {
				diff += tau
			}
			bump = diff / tau
			if math.Abs(bump) < precision {
				bump++
			}
			first = false
		} else {
			bump = plusMinusPi(diff) / tau
		}
		if math.Abs(bump) < converged || (i == maxSteps-1 && math.Abs(bump) < precision) {
			return t, !circumpolar
		}
		t += bump
	}
	return t, false
}

// sunRadius is the sun's apparent angular radius (radians) at distance dist AU.
func sunRadius(dist float64) float64 {
	return 959.63 / 3600 * deg / dist
}

// sunParallax is the sun's horizontal parallax (radians) at distance dist AU.
func sunParallax(dist float64) float64 {
	return 8.794 / 3600 * deg / dist
}
