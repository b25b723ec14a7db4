package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	stackhcl "github.com/obcd/obcd/hcl"
)

// bigStacks are large stack files, each of one shape: what the bounds
// let through (a string or comments up to the 2 MiB size bound, locals
// up to the token bound), what they refuse (a 10 MB string, 1.5 MB of
// syntax past the token bound) and what they stop (an expression that
// builds a billion values).
func bigStacks(b *testing.B) map[string]string {
	b.Helper()
	src, err := os.ReadFile("../../stacks/obcms.hcl")
	if err != nil {
		b.Fatal(err)
	}
	base := string(src)
	room := stackhcl.MaxStackSize - len(base) - 100
	var short strings.Builder
	for i := 0; short.Len() < 1500<<10; i++ {
		short.WriteString("  l" + strconv.Itoa(i) + " = " + strconv.Itoa(i) + "\n")
	}
	comment := "# " + strings.Repeat("c", 98) + "\n"
	return map[string]string{
		"string_2MiB":         inLocals(`  big = "` + strings.Repeat("s", room) + `"`)(base),
		"comments_2MiB":       base + strings.Repeat(comment, room/len(comment)),
		"locals_30000":        inLocals(manyLocals(30_000, false))(base),
		"chained_30000":       inLocals(manyLocals(30_000, true))(base),
		"refused_tokens":      inLocals(short.String())(base),
		"refused_string_10MB": inLocals(`  big = "` + strings.Repeat("s", 10<<20) + `"`)(base),
		"stopped_for_loops":   inLocals(`  z = [for a in range(1024): [for b in range(1024): [for c in range(1024): c]]]`)(base),
	}
}

// BenchmarkCommand_BigStacks runs validate and render on each big stack
// and reports, beside the wall time per run, the CPU time and the peak
// memory the kernel accounted to obcd. The bound obcd keeps is 2 s and
// 300 MB on any stack of up to 10 MB (docs/benchmarks.md); a run past it
// fails the benchmark, so that make bench shows it.
func BenchmarkCommand_BigStacks(b *testing.B) {
	for name, stack := range bigStacks(b) {
		for _, command := range []string{"validate", "render"} {
			b.Run(name+"/"+command, func(b *testing.B) {
				dir := b.TempDir()
				if err := os.WriteFile(filepath.Join(dir, "obcd.hcl"), []byte(stack), 0o644); err != nil {
					b.Fatal(err)
				}
				obcd(b, dir, nil, "secrets", "init", "staging")
				var cpu time.Duration
				var peak int64
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					args := []string{command, "staging"}
					if command == "render" {
						args = append(args, "--out", filepath.Join(dir, "out"))
					}
					_, use := runBounded(b, dir, nil, args...)
					cpu += use.cpu
					peak = max(peak, use.maxRSS)
				}
				b.StopTimer()
				b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
				b.ReportMetric(float64(peak>>20), "peak-MB")
				if cpu/time.Duration(b.N) > hostileCPU || peak > hostileMemory {
					b.Errorf("%s %s: %s of CPU and %d MB a run; the bound is %s and %d MB", command, name, cpu/time.Duration(b.N), peak>>20, hostileCPU, hostileMemory>>20)
				}
			})
		}
	}
}
