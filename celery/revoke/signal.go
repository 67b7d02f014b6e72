package revoke

import (
	"fmt"
	"strconv"
	"strings"
)

// signals are Linux's signal numbers, as Python's signal module names them (aliases included).
var signals = map[string]int{
	"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6, "SIGIOT": 6,
	"SIGBUS": 7, "SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12,
	"SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15, "SIGSTKFLT": 16, "SIGCHLD": 17, "SIGCLD": 17,
	"SIGCONT": 18, "SIGSTOP": 19, "SIGTSTP": 20, "SIGTTIN": 21, "SIGTTOU": 22, "SIGURG": 23,
	"SIGXCPU": 24, "SIGXFSZ": 25, "SIGVTALRM": 26, "SIGPROF": 27, "SIGWINCH": 28, "SIGIO": 29,
	"SIGPOLL": 29, "SIGPWR": 30, "SIGSYS": 31, "SIGRTMIN": 34, "SIGRTMAX": 64,
}

// canonical names for numbers, where aliases share one.
var signalNames = func() map[int]string {
	m := map[int]string{}
	for name, n := range signals {
		switch name {
		case "SIGIOT", "SIGCLD", "SIGPOLL":
			continue
		}
		m[n] = name
	}
	return m
}()

// DefaultSignal is the signal Celery sends to terminate a revoked task.
const DefaultSignal = "SIGTERM"

// ParseSignal returns the name of the signal s denotes, as Celery's platforms.signals.signum
// reads it: an uppercase name with or without "SIG" ("TERM", "SIGKILL"), or a number
// ("9" -> "SIGKILL"). "" is [DefaultSignal]. Lowercase names are refused, as Celery refuses them.
func ParseSignal(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return DefaultSignal, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if name, ok := signalNames[n]; ok {
			return name, nil
		}
		return "", fmt.Errorf("no such signal: %s", s)
	}
	if strings.ToUpper(s) != s {
		return "", fmt.Errorf("signal name must be uppercase: %q", s)
	}
	name := s
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if _, ok := signals[name]; !ok {
		return "", fmt.Errorf("no such signal: %q", s)
	}
	return name, nil
}

// SignalNumber is the Linux number of a signal name returned by ParseSignal (the signum of a
// task-revoked event).
func SignalNumber(name string) (int, error) {
	n, ok := signals[name]
	if !ok {
		return 0, fmt.Errorf("no such signal: %q", name)
	}
	return n, nil
}
