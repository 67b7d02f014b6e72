package main

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestTables checks the baseline's input: one CSV per table, every row of the feed, parents
// numbered in feed order and children pointing at them.
func TestTables(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	feedPath := filepath.Join(dir, "feed.csv")
	if err := gen([]string{"-rows", "300", "-out", feedPath}); err != nil {
		t.Fatal(err)
	}
	if err := tables([]string{"-in", feedPath, "-dir", dir}); err != nil {
		t.Fatal(err)
	}
	read := func(name string) [][]string {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return recs
	}
	forums, advs, cmps, ads := read("forums.csv"), read("advertisers.csv"), read("campaigns.csv"), read("ads.csv")
	// 300 rows: 3 forums and 22 advertisers of 13 rows each.
	if len(forums) != 3 || len(advs) != 22 || len(cmps) != 44 || len(ads) != 220 {
		t.Fatalf("rows: %d forums, %d advertisers, %d campaigns, %d ads", len(forums), len(advs), len(cmps), len(ads))
	}
	for i, a := range advs {
		if a[0] != strconv.Itoa(i+1) || len(a) != 5 {
			t.Fatalf("advertiser %d: %v", i, a)
		}
	}
	for _, c := range cmps {
		if id, err := strconv.Atoi(c[2]); err != nil || id < 1 || id > len(advs) || len(c) != 13 || c[9][0] != '{' {
			t.Fatalf("campaign %v", c)
		}
	}
	for _, a := range ads {
		if id, err := strconv.Atoi(a[1]); err != nil || id < 1 || id > len(cmps) || len(a) != 7 {
			t.Fatalf("ad %v", a)
		}
	}
}
