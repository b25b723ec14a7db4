package testsvc_test

import (
	"cmp"
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/obcd/obcd/internal/testsvc"
)

// dockerCLI runs the docker CLI against host ("" is the machine's
// engine) and returns its trimmed output.
func dockerCLI(t *testing.T, host string, args ...string) string {
	t.Helper()
	if host != "" {
		args = append([]string{"-H", host}, args...)
	}
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestSwarm_ThreeNodesPullFromTheRegistryAndTalkAcrossTheOverlay: the
// script's swarm has three ready nodes (up twice changes nothing), every
// node pulls from the loopback registry with the manager's login, a
// service spread one task per node answers from every node across the
// overlay, and down leaves the machine as it was.
func TestSwarm_ThreeNodesPullFromTheRegistryAndTalkAcrossTheOverlay(t *testing.T) {
	docker, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	reg := testsvc.StartRegistry(t, "swarm-ci", "pull: pass")
	port, _ := strconv.Atoi(reg.Addr[strings.LastIndex(reg.Addr, ":")+1:])
	swarm := testsvc.StartSwarm(t, 2, port)
	testsvc.SwarmScript(t, port, "up", "2") // idempotent
	if nodes := dockerCLI(t, "", "node", "ls", "--format", "{{.Status}} {{.Availability}}"); strings.Count(nodes, "Ready Active") != 3 {
		t.Fatalf("nodes:\n%s\nwant 3 ready and active", nodes)
	}

	ref := reg.Addr + "/obcd/swarm-app:1"
	testsvc.BuildAppImage(t, docker, ref, testsvc.AppImageOptions{Version: "swarm"})
	config := t.TempDir()
	login := exec.Command("docker", "--config", config, "login", "-u", reg.User, "--password-stdin", reg.Addr)
	login.Stdin = strings.NewReader(reg.Password)
	if out, err := login.CombinedOutput(); err != nil {
		t.Fatalf("docker login: %v\n%s", err, out)
	}
	dockerCLI(t, "", "--config", config, "push", "--quiet", ref)

	network := fmt.Sprintf("obcd-swarm-test-%d", time.Now().UnixNano())
	dockerCLI(t, "", "network", "create", "--driver", "overlay", "--attachable", network)
	t.Cleanup(func() { _ = exec.Command("docker", "network", "rm", network).Run() })
	dockerCLI(t, "", "--config", config, "service", "create", "--quiet", "--detach", "--with-registry-auth",
		"--name", network+"-web", "--network", network, "--endpoint-mode", "dnsrr",
		"--replicas", "3", "--replicas-max-per-node", "1", ref)
	t.Cleanup(func() { _ = exec.Command("docker", "service", "rm", network+"-web").Run() })

	// Every node runs one task, pulled from the registry.
	var tasks []string
	deadline := time.Now().Add(90 * time.Second)
	for {
		out := dockerCLI(t, "", "service", "ps", network+"-web", "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}} {{.Error}}")
		tasks = strings.Split(out, "\n")
		if strings.Count(out, "Running") == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service's tasks did not all run within 90 s:\n%s", out)
		}
		time.Sleep(time.Second)
	}
	// Each task's address on the overlay and its node's, as the manager
	// assigned them (the network's own view of its endpoints comes by
	// gossip, and lags behind).
	listed, err := docker.TaskList(context.Background(), client.TaskListOptions{Filters: make(client.Filters).Add("service", network+"-web").Add("desired-state", "running")})
	if err != nil {
		t.Fatal(err)
	}
	var ips, hosts []string
	for _, task := range listed.Items {
		for _, att := range task.NetworksAttachments {
			if att.Network.Spec.Name == network && len(att.Addresses) > 0 {
				ips = append(ips, att.Addresses[0].Addr().String())
			}
		}
		node, err := docker.NodeInspect(context.Background(), task.NodeID, client.NodeInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, node.Node.Status.Addr)
	}
	sort.Strings(hosts)
	if len(ips) != 3 || strings.Join(hosts, " ") != "10.231.0.1 10.231.0.11 10.231.0.12" {
		t.Fatalf("task IPs %v on hosts %v, want one task on each of the three nodes (%v)", ips, hosts, tasks)
	}

	// From each node, a container on the overlay reaches every task.
	for _, host := range append([]string{""}, swarm.Workers...) {
		for _, ip := range ips {
			// A task's image is stored by digest, without its tag: the
			// run pulls by tag, with the login.
			out, err := exec.Command("docker", dockerArgs(host, "--config", config, "run", "--rm", "--network", network,
				"-e", "HEALTH_URL=http://"+ip+":8000/health/", ref, "-health")...).CombinedOutput()
			if err != nil {
				t.Errorf("from node %q, the task at %s did not answer across the overlay: %v\n%s", cmp.Or(host, "manager"), ip, err, out)
			}
		}
	}
}

func dockerArgs(host string, args ...string) []string {
	if host == "" {
		return args
	}
	return append([]string{"-H", host}, args...)
}

// TestSwarm_DownLeavesTheMachineAsItWas runs after a swarm's whole life.
func TestSwarm_DownLeavesTheMachineAsItWas(t *testing.T) {
	testsvc.SwarmScript(t, 5000, "up", "1")
	testsvc.SwarmScript(t, 5000, "down")
	testsvc.SwarmScript(t, 5000, "down") // idempotent
	if state := dockerCLI(t, "", "info", "--format", "{{.Swarm.LocalNodeState}}"); state != "inactive" {
		t.Errorf("the machine's engine is %q in swarm mode after down, want inactive", state)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), "obcdsw") {
		t.Errorf("namespaces left: %s", out)
	}
	if out, _ := exec.Command("ip", "-o", "link").Output(); strings.Contains(string(out), "obcdsw") {
		t.Errorf("links left:\n%s", out)
	}
	if out := dockerCLI(t, "", "network", "ls", "--format", "{{.Name}}"); strings.Contains(out, "docker_gwbridge") || strings.Contains(out, "ingress") {
		t.Errorf("swarm networks left:\n%s", out)
	}
	if out, _ := exec.Command("pgrep", "-f", "obcd-swarm").Output(); len(out) > 0 {
		t.Errorf("processes left: %s", out)
	}
	if out, _ := exec.Command("iptables", "-S", "DOCKER-USER").Output(); strings.Contains(string(out), "obcdsw0") {
		t.Errorf("iptables rule left:\n%s", out)
	}
}

// TestSwarm_TheMachinesOwnSwarmIsNeverTouched: an engine already in a
// swarm the script did not make is left in it by down, and up refuses to
// start beside it, changing nothing.
func TestSwarm_TheMachinesOwnSwarmIsNeverTouched(t *testing.T) {
	testsvc.SwarmScript(t, 5000, "down")
	dockerCLI(t, "", "swarm", "init", "--advertise-addr", "127.0.0.1")
	t.Cleanup(func() { _ = exec.Command("docker", "swarm", "leave", "--force").Run() })
	testsvc.SwarmScript(t, 5000, "down")
	if state := dockerCLI(t, "", "info", "--format", "{{.Swarm.LocalNodeState}}"); state != "active" {
		t.Errorf("down left the machine's own swarm: %s", state)
	}
	script := exec.Command("bash", "../../testdata/swarm/swarm.sh", "up", "1")
	out, err := script.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "did not make") {
		t.Errorf("up beside the machine's own swarm: %v\n%s", err, out)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), "obcdsw") {
		t.Errorf("the refused up made namespaces: %s", out)
	}
}
