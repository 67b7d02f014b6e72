package protocol

import (
	"errors"
	"testing"
	"time"
)

func TestFormatTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"utc with micros", time.Date(2024, 5, 1, 12, 0, 0, 123456000, time.UTC), "2024-05-01T12:00:00.123456+00:00"},
		{"no fraction when zero micros", time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC), "2024-05-01T12:00:00+00:00"},
		{"truncates, never rounds", time.Date(2024, 5, 1, 12, 0, 0, 999999999, time.UTC), "2024-05-01T12:00:00.999999+00:00"},
		{"sub-micro only is no fraction", time.Date(2024, 5, 1, 12, 0, 0, 999, time.UTC), "2024-05-01T12:00:00+00:00"},
		{"leading zeros in fraction", time.Date(2024, 5, 1, 12, 0, 0, 5000, time.UTC), "2024-05-01T12:00:00.000005+00:00"},
		{"positive offset", time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("", 2*3600)), "2030-01-02T03:04:05+02:00"},
		{"negative offset with minutes", time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("", -(9*3600+30*60))), "2030-01-02T03:04:05-09:30"},
		{"offset with seconds", time.Date(1900, 1, 1, 0, 0, 0, 0, time.FixedZone("LMT", 3208)), "1900-01-01T00:00:00+00:53:28"},
		{"small year padded", time.Date(33, 3, 3, 3, 3, 3, 0, time.UTC), "0033-03-03T03:03:03+00:00"},
		{"local zone is not Z", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).In(time.FixedZone("CET", 3600)), "2024-01-01T01:00:00+01:00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := FormatTime(tc.in); got != tc.want {
				t.Errorf("FormatTime = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	t.Parallel()
	plus2 := time.FixedZone("", 7200)
	tests := []struct {
		in      string
		want    time.Time
		wantOff int
		wantErr bool
	}{
		{in: "2024-05-01T12:00:00.123456+00:00", want: time.Date(2024, 5, 1, 12, 0, 0, 123456000, time.UTC)},
		{in: "2024-05-01T12:00:00+02:00", want: time.Date(2024, 5, 1, 12, 0, 0, 0, plus2), wantOff: 7200},
		{in: "2024-05-01T12:00:00+0200", want: time.Date(2024, 5, 1, 12, 0, 0, 0, plus2), wantOff: 7200},
		{in: "2024-05-01T12:00:00+02", want: time.Date(2024, 5, 1, 12, 0, 0, 0, plus2), wantOff: 7200},
		{in: "2024-05-01T12:00:00-05:30", want: time.Date(2024, 5, 1, 17, 30, 0, 0, time.UTC), wantOff: -19800},
		{in: "2024-05-01T12:00:00Z", want: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)},
		{in: "2024-05-01T12:00:00.5Z", want: time.Date(2024, 5, 1, 12, 0, 0, 500000000, time.UTC)},
		{in: "2024-05-01T12:00:00", want: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)},
		{in: "2024-05-01 12:00:00.000001", want: time.Date(2024, 5, 1, 12, 0, 0, 1000, time.UTC)},
		{in: "2024-05-01T12:00:00.1234567+00:00", want: time.Date(2024, 5, 1, 12, 0, 0, 123456700, time.UTC)},
		{in: "2024-05-01T12:00:00.123456789Z", want: time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)},
		{in: "2024-05-01T12:00-00:00", want: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)},
		{in: "2024-02-29T00:00:00", want: time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		{in: "2024-05-01T12:00:00.1234567890Z", wantErr: true},
		{in: "2024-05-01T12:00:00.Z", wantErr: true},
		{in: "2024-05-01", wantErr: true},
		{in: "2023-02-29T00:00:00", wantErr: true},
		{in: "2024-13-01T00:00:00", wantErr: true},
		{in: "2024-05-01T24:00:00", wantErr: true},
		{in: "2024-05-01T12:60:00", wantErr: true},
		{in: "2024-05-01T12:00:60", wantErr: true},
		{in: "0000-01-01T00:00:00", wantErr: true},
		{in: "2024-05-01T12:00:00+24:00", wantErr: true},
		{in: "2024-05-01T12:00:00+02:", wantErr: true},
		{in: "2024-05-01T12:00:00 garbage", wantErr: true},
		{in: "2024-05-01T12:00:00Zjunk", wantErr: true},
		{in: "2024-5-1T12:00:00", wantErr: true},
		{in: "not a date", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseTime(tc.in)
			if tc.wantErr {
				var pe *time.ParseError
				if !errors.As(err, &pe) || pe.Value != tc.in {
					t.Fatalf("ParseTime = %v, %v; want a *time.ParseError", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, off := got.Zone(); !got.Equal(tc.want) || off != tc.wantOff {
				t.Errorf("ParseTime = %v (offset %d), want %v (offset %d)", got, off, tc.want, tc.wantOff)
			}
			if tc.wantOff == 0 && got.Location() != time.UTC {
				t.Errorf("zero offset should give time.UTC, got %v", got.Location())
			}
		})
	}
}
