package budget

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRun_AbortsPastEachLimit: a computation that keeps allocating, or
// keeps computing, is reported past the limit it crosses; one within
// both is not. (The abort here returns and sets a flag the computation
// reads, where obcd's exits.)
func TestRun_AbortsPastEachLimit(t *testing.T) {
	for _, c := range []struct {
		name   string
		limits Limits
		work   func(stop *atomic.Value)
		want   string
	}{
		{"memory", Limits{Memory: 64 << 20, CPU: time.Minute}, func(stop *atomic.Value) {
			var keep [][]byte
			for stop.Load() == nil && len(keep) < 2048 {
				keep = append(keep, make([]byte, 1<<20))
			}
		}, "MB of memory"},
		{"CPU", Limits{Memory: 1 << 30, CPU: 200 * time.Millisecond}, func(stop *atomic.Value) {
			for n := 0; stop.Load() == nil && n < 1<<40; n++ {
			}
		}, "of CPU time"},
		{"within both", Limits{Memory: 1 << 30, CPU: time.Minute}, func(*atomic.Value) { time.Sleep(20 * time.Millisecond) }, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stop atomic.Value
			Run(c.limits, func(why string) { stop.Store(why) }, func() { c.work(&stop) })
			got, _ := stop.Load().(string)
			if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
				t.Errorf("abort said %q, want %q", got, c.want)
			}
		})
	}
}
