package events

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultFreq is Celery's heartbeat interval.
const DefaultFreq = 2 * time.Second

// SoftwareIdent is the sw_ident this package reports by default. It is deliberately not Python's
// "py-celery": nothing in Celery or Flower compares it, and an operator looking at Flower's worker
// page can then tell the Go workers from the Python ones.
const SoftwareIdent = "go-celery"

// DefaultSoftware is what worker events report unless told otherwise: sw_ident "go-celery", sw_ver
// the main module's version ("(devel)" in a development build), sw_sys the operating system as
// Python's platform.system() names it ("Linux").
func DefaultSoftware() Software {
	ver := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		ver = bi.Main.Version
	}
	return Software{Ident: SoftwareIdent, Version: ver, System: platformSystem(runtime.GOOS)}
}

// platformSystem is Python's platform.system() for a GOOS.
func platformSystem(goos string) string {
	switch goos {
	case "linux":
		return "Linux"
	case "darwin", "ios":
		return "Darwin"
	case "windows":
		return "Windows"
	case "freebsd":
		return "FreeBSD"
	case "openbsd":
		return "OpenBSD"
	case "netbsd":
		return "NetBSD"
	case "dragonfly":
		return "DragonFly"
	case "solaris", "illumos":
		return "SunOS"
	case "aix":
		return "AIX"
	}
	if goos == "" {
		return ""
	}
	return strings.ToUpper(goos[:1]) + goos[1:]
}

// ReadLoadAvg reads the 1, 5 and 15 minute load averages from /proc/loadavg, rounded up to two
// decimals as Celery does (ceil(l * 100) / 100).
func ReadLoadAvg() ([3]float64, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return [3]float64{}, fmt.Errorf("events: load average: %w", err)
	}
	return ParseLoadAvg(string(b))
}

// ParseLoadAvg parses the first three fields of /proc/loadavg ("0.85 1.15 0.77 1/146 27363"), each
// a finite number from 0 to 1e12, rounded up to two decimals as Celery does.
func ParseLoadAvg(s string) ([3]float64, error) {
	var la [3]float64
	f := strings.Fields(s)
	if len(f) < 3 {
		return la, fmt.Errorf("events: load average: want three numbers, got %q", abbreviate([]byte(s)))
	}
	for i := range la {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > 1e12 {
			return la, fmt.Errorf("events: load average: field %d is not a load average: %q", i+1, abbreviate([]byte(f[i])))
		}
		la[i] = math.Ceil(v*1e2) / 1e2
	}
	return la, nil
}

// HeartbeatOptions configure a Heartbeat.
type HeartbeatOptions struct {
	// Freq is the interval between worker-heartbeat events; 0 means DefaultFreq (2 s).
	Freq time.Duration
	// Status returns the tasks running now and those processed since start; nil reports 0 and 0.
	Status func() (active, processed int)
	// Software is reported in every event; the zero value means DefaultSoftware().
	Software Software
	// LoadAvg returns the load average; nil means ReadLoadAvg. On error 0, 0, 0 is sent (as Celery
	// does where there is none) and the error is logged once.
	LoadAvg func() ([3]float64, error)
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Heartbeat sends worker-online when it starts, worker-heartbeat every Freq, and worker-offline when
// stopped, through a Dispatcher (Celery's worker Heart).
type Heartbeat struct {
	d        *Dispatcher
	o        HeartbeatOptions
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
	loadOnce sync.Once
}

// StartHeartbeat sends worker-online now and starts sending worker-heartbeat every Freq.
func StartHeartbeat(d *Dispatcher, o HeartbeatOptions) *Heartbeat {
	if o.Freq <= 0 {
		o.Freq = DefaultFreq
	}
	if o.Status == nil {
		o.Status = func() (int, int) { return 0, 0 }
	}
	if o.Software == (Software{}) {
		o.Software = DefaultSoftware()
	}
	if o.LoadAvg == nil {
		o.LoadAvg = ReadLoadAvg
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &Heartbeat{d: d, o: o, stop: make(chan struct{}), done: make(chan struct{})}
	d.Send(NewWorkerOnline(h.state()))
	go h.loop()
	return h
}

func (h *Heartbeat) loop() {
	defer close(h.done)
	t := time.NewTicker(h.o.Freq)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.d.Send(NewWorkerHeartbeat(h.state()))
		}
	}
}

// state is what the worker events report now.
func (h *Heartbeat) state() WorkerState {
	active, processed := h.o.Status()
	la, err := h.o.LoadAvg()
	if err != nil {
		la = [3]float64{}
		h.loadOnce.Do(func() {
			h.o.Logger.Warn("worker events report load average 0: it cannot be read", "error", err)
		})
	}
	return WorkerState{Freq: h.o.Freq, Active: active, Processed: processed, LoadAvg: la, Software: h.o.Software}
}

// Stop stops the heartbeats and sends worker-offline (once; later calls do nothing). Close the
// Dispatcher afterwards to flush it.
func (h *Heartbeat) Stop() {
	h.once.Do(func() {
		close(h.stop)
		<-h.done
		h.d.Send(NewWorkerOffline(h.state()))
	})
}
