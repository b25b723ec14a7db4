package testsvc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Swarm is a multi-node Docker Swarm on this machine, made by
// testdata/swarm/swarm.sh: the machine's engine is the manager, and each
// worker is another dockerd in its own network namespace.
type Swarm struct {
	// Workers are the workers' engines, as docker_host URLs.
	Workers []string
	// RegistryPort is the loopback port every node reaches the registry
	// on, as 127.0.0.1:RegistryPort.
	RegistryPort int
}

// swarmScript is testdata/swarm/swarm.sh, found from this file.
func swarmScript(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testsvc: cannot find testdata/swarm/swarm.sh")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "swarm", "swarm.sh")
}

// SwarmScript runs testdata/swarm/swarm.sh with args, and returns its
// output; it fails the test when the script fails.
func SwarmScript(t testing.TB, registryPort int, args ...string) string {
	t.Helper()
	cmd := exec.Command("bash", append([]string{swarmScript(t)}, args...)...)
	cmd.Env = append(os.Environ(), "REGISTRY_PORT="+strconv.Itoa(registryPort))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("testsvc: swarm.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// StartSwarm brings up a swarm of the machine's engine and workers more
// engines, whose nodes reach the registry at 127.0.0.1:registryPort, and
// takes it down when the test ends: the machine's engine leaves swarm
// mode, and the workers, their namespaces and docker_gwbridge are gone.
func StartSwarm(t testing.TB, workers, registryPort int) *Swarm {
	t.Helper()
	RequireBinaries(t, "/usr/bin/nsenter", "/usr/bin/socat", "/usr/sbin/ip", "/usr/sbin/iptables")
	// A swarm left by a killed run would keep the old registry port.
	SwarmScript(t, registryPort, "down")
	t.Cleanup(func() { SwarmScript(t, registryPort, "down") })
	SwarmScript(t, registryPort, "up", strconv.Itoa(workers))
	s := &Swarm{RegistryPort: registryPort}
	for i := 1; i <= workers; i++ {
		s.Workers = append(s.Workers, fmt.Sprintf("unix:///var/lib/obcd-swarm/worker%d/docker.sock", i))
	}
	return s
}

// StopWorker kills worker i's engine and its containers, as a machine
// that dies: the manager sees the node go down and reschedules its tasks.
func (s *Swarm) StopWorker(t testing.TB, i int) {
	t.Helper()
	SwarmScript(t, s.RegistryPort, "stop-worker", strconv.Itoa(i))
}

// StartWorker starts worker i's engine again and waits until it is back
// in the swarm.
func (s *Swarm) StartWorker(t testing.TB, i int) {
	t.Helper()
	SwarmScript(t, s.RegistryPort, "start-worker", strconv.Itoa(i))
}
