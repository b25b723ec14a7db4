// Package swarm runs an environment's services as Docker Swarm services:
// the translation of obcd's desired state (engine.ServiceSpec) into
// Swarm's service, secret and config specs, and the primitives that
// create and update them and wait for them to converge. The release
// logic (order, probes, rollback) stays obcd's; this package is the
// Swarm side of it. See docs/swarm.md for what is built and what is not.
package swarm

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"

	"github.com/obcd/obcd/orchestrator/engine"
)

// Labels that obcd sets, the first two as `docker stack deploy` does, so
// that `docker stack ps` and `docker stack services` list obcd's services.
const (
	LabelNamespace = "com.docker.stack.namespace"
	LabelImage     = "com.docker.stack.image"
	// LabelSpecHash is the digest of what makes the service's tasks
	// (engine.ServiceSpec.Hash plus the Swarm-only parts): a service whose
	// label equals the desired one has nothing to update.
	LabelSpecHash = "io.obcd.spec-hash"
	// LabelRelease is the obcd release that last wrote the service.
	LabelRelease = "io.obcd.release"
)

// SecretsDir is where a task's secrets are mounted unless a file names
// another target.
const SecretsDir = "/run/secrets"

// Service is one service as Swarm objects: its spec and the secrets and
// configs it mounts, each named by its content's digest, since Swarm's
// secrets and configs are immutable.
type Service struct {
	Spec    swarm.ServiceSpec
	Secrets []swarm.SecretSpec
	Configs []swarm.ConfigSpec
}

// Options are the environment-wide parts of a translation.
type Options struct {
	// Network is the project's attachable overlay network.
	Network string
	// Release is the release that writes the services.
	Release string
	// SecretValues are the values of the stack's secrets: an env value
	// that holds one is not put in the task's environment, where
	// `docker service inspect` and `docker inspect` would show it, but
	// in a Swarm secret, and the variable becomes NAME_FILE with its path.
	SecretValues []string
	// Constraints, by service name, pin a service's tasks (placement
	// constraints such as node.labels.obcd.node==worker1): the stateful
	// services, with their volumes.
	Constraints map[string][]string
}

// ServiceName is the Swarm name of a service of project, as `docker
// stack deploy` names them.
func ServiceName(project, service string) string { return project + "_" + service }

var nameUnsafe = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// objectName names a secret or config by project, a readable part and
// the content's digest, within Swarm's 64 characters.
func objectName(project, readable string, data []byte) string {
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])[:12]
	readable = strings.Trim(nameUnsafe.ReplaceAllString(readable, "-"), "-.")
	name := project + "_" + readable
	if max := 64 - len(digest) - 1; len(name) > max {
		name = name[:max]
	}
	return name + "-" + digest
}

// FileVariable is the variable that names the file holding the value of
// key, in the convention of the images that read one: NAME_FILE (the
// official PostgreSQL image, most Django settings loaders), and for
// Grafana's GF_* settings NAME__FILE.
func FileVariable(key string) string {
	if strings.HasPrefix(key, "GF_") {
		return key + "__FILE"
	}
	return key + "_FILE"
}

// Translate makes the Swarm objects of spec. A file whose mode gives no
// access to group or others is a secret, any other file a config; an env
// value holding a secret value becomes a secret file and NAME_FILE.
func Translate(spec engine.ServiceSpec, opts Options) (Service, error) {
	if spec.Project == "" || spec.Name == "" {
		return Service{}, fmt.Errorf("service spec without a project or a name")
	}
	labels := map[string]string{LabelNamespace: spec.Project, LabelImage: spec.Image, LabelRelease: opts.Release}
	objectLabels := map[string]string{LabelNamespace: spec.Project}
	cs := &swarm.ContainerSpec{
		Image: cmp.Or(spec.RunImage, spec.Image), Labels: map[string]string{LabelNamespace: spec.Project},
		Command: spec.Entrypoint, Args: spec.Command, User: spec.User, Hostname: "{{.Service.Name}}-{{.Task.Slot}}",
	}
	if spec.StopGrace > 0 {
		grace := spec.StopGrace
		cs.StopGracePeriod = &grace
	}
	if h := spec.Health; h != nil {
		cs.Healthcheck = &container.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	}
	var out Service
	for _, key := range slices.Sorted(maps.Keys(spec.Env)) {
		value := spec.Env[key]
		if !holdsSecret(value, opts.SecretValues) {
			cs.Env = append(cs.Env, key+"="+value)
			continue
		}
		data := []byte(value)
		name := objectName(spec.Project, spec.Name+"-env-"+key, data)
		out.Secrets = append(out.Secrets, swarm.SecretSpec{Annotations: swarm.Annotations{Name: name, Labels: objectLabels}, Data: data})
		target := path.Join(SecretsDir, strings.ToLower(key))
		cs.Secrets = append(cs.Secrets, &swarm.SecretReference{SecretName: name, File: &swarm.SecretReferenceFileTarget{Name: target, UID: "0", GID: "0", Mode: 0o444}})
		cs.Env = append(cs.Env, FileVariable(key)+"="+target)
	}
	for _, f := range spec.Files {
		readable := spec.Name + "-" + path.Base(f.Target)
		if f.Mode.Perm()&0o077 == 0 {
			name := objectName(spec.Project, readable, f.Data)
			out.Secrets = append(out.Secrets, swarm.SecretSpec{Annotations: swarm.Annotations{Name: name, Labels: objectLabels}, Data: f.Data})
			cs.Secrets = append(cs.Secrets, &swarm.SecretReference{SecretName: name, File: &swarm.SecretReferenceFileTarget{Name: f.Target, UID: fileOwner(spec.User), GID: "0", Mode: f.Mode.Perm()}})
			continue
		}
		name := objectName(spec.Project, readable, f.Data)
		out.Configs = append(out.Configs, swarm.ConfigSpec{Annotations: swarm.Annotations{Name: name, Labels: objectLabels}, Data: f.Data})
		cs.Configs = append(cs.Configs, &swarm.ConfigReference{ConfigName: name, File: &swarm.ConfigReferenceFileTarget{Name: f.Target, UID: fileOwner(spec.User), GID: "0", Mode: f.Mode.Perm()}})
	}
	for _, m := range spec.Mounts {
		switch {
		case m.Volume != "":
			cs.Mounts = append(cs.Mounts, mount.Mount{Type: mount.TypeVolume, Source: m.Volume, Target: m.Target, ReadOnly: m.ReadOnly,
				VolumeOptions: &mount.VolumeOptions{Labels: map[string]string{LabelNamespace: spec.Project}}})
		case m.Bind != "":
			// A host path of the node the task runs on (the node
			// exporter's /): obcd's own files come as configs, never binds.
			cs.Mounts = append(cs.Mounts, mount.Mount{Type: mount.TypeBind, Source: m.Bind, Target: m.Target, ReadOnly: m.ReadOnly})
		}
	}
	task := swarm.TaskSpec{
		ContainerSpec: cs,
		Networks:      []swarm.NetworkAttachmentConfig{{Target: opts.Network, Aliases: []string{spec.Name}}},
		RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny},
	}
	if spec.Memory > 0 || spec.NanoCPUs > 0 {
		task.Resources = &swarm.ResourceRequirements{Limits: &swarm.Limit{MemoryBytes: spec.Memory, NanoCPUs: spec.NanoCPUs}}
	}
	if c := append(slices.Clone(spec.Placement), opts.Constraints[spec.Name]...); len(c) > 0 {
		task.Placement = &swarm.Placement{Constraints: c}
	}
	replicas := uint64(max(spec.Replicas, 0))
	out.Spec = swarm.ServiceSpec{
		Annotations:  swarm.Annotations{Name: ServiceName(spec.Project, spec.Name), Labels: labels},
		TaskTemplate: task,
		// dnsrr: the default VIP mode needs IPVS in the kernel, which
		// hosts may lack; the service name resolves to every task, and
		// nginx re-resolves its upstreams.
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
	}
	for _, p := range spec.Ports {
		port, err := publishedPort(p)
		if err != nil {
			return Service{}, fmt.Errorf("service %s: %w", spec.Name, err)
		}
		out.Spec.EndpointSpec.Ports = append(out.Spec.EndpointSpec.Ports, port)
	}
	if spec.OneOff {
		// migrate and the backup run to completion, once per release.
		one := uint64(1)
		out.Spec.Mode = swarm.ServiceMode{ReplicatedJob: &swarm.ReplicatedJob{MaxConcurrent: &one, TotalCompletions: &one}}
		task.RestartPolicy = &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionNone}
		out.Spec.TaskTemplate = task
	} else {
		out.Spec.Mode = swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}}
		order := swarm.UpdateOrderStopFirst
		// A port published in host mode is held by the old task until it
		// stops: a new one beside it could not bind.
		if spec.StartFirst && len(spec.Ports) == 0 {
			order = swarm.UpdateOrderStartFirst
		}
		// pause, never rollback: obcd decides a rollback for the whole
		// release, and Swarm's own would leave the stack mixed.
		out.Spec.UpdateConfig = &swarm.UpdateConfig{Parallelism: 1, Order: order, FailureAction: swarm.UpdateFailureActionPause,
			Monitor: 10 * time.Second, MaxFailureRatio: 0}
	}
	out.Spec.Labels[LabelSpecHash] = specHash(spec, out)
	return out, nil
}

// publishedPort is a port published in host mode, on the node that runs
// the task: the ingress routing mesh needs VIP mode (IPVS), which dnsrr
// services cannot use. Swarm publishes on every address of the node, so
// a host IP is refused rather than silently widened.
func publishedPort(p engine.PortSpec) (swarm.PortConfig, error) {
	if p.HostIP != "" && p.HostIP != "0.0.0.0" && p.HostIP != "::" {
		return swarm.PortConfig{}, fmt.Errorf("port %s:%s:%s: a swarm publishes on every address of a node, not on %s alone; publish without the address, or put the service behind the edge proxy", p.HostIP, p.HostPort, p.ContainerPort, p.HostIP)
	}
	published, err1 := strconv.ParseUint(p.HostPort, 10, 16)
	target, err2 := strconv.ParseUint(p.ContainerPort, 10, 16)
	if err1 != nil || err2 != nil || published == 0 || target == 0 {
		return swarm.PortConfig{}, fmt.Errorf("port %s:%s: a swarm publishes one port to one port; ranges and random host ports are not supported", p.HostPort, p.ContainerPort)
	}
	protocol := network.TCP
	if p.Protocol == "udp" {
		protocol = network.UDP
	}
	return swarm.PortConfig{Protocol: protocol, PublishedPort: uint32(published), TargetPort: uint32(target), PublishMode: swarm.PortConfigPublishModeHost}, nil
}

// specHash digests what makes the service's tasks: the container's hash
// and the Swarm spec without the labels obcd changes every release.
func specHash(spec engine.ServiceSpec, svc Service) string {
	h := sha256.New()
	// The image the tasks run: a tag pinned to another digest changes them.
	fmt.Fprintf(h, "%s\n%d\n%s\n", spec.Hash(), spec.Replicas, svc.Spec.TaskTemplate.ContainerSpec.Image)
	for _, s := range svc.Secrets {
		fmt.Fprintf(h, "secret %s\n", s.Name)
	}
	for _, c := range svc.Configs {
		fmt.Fprintf(h, "config %s\n", c.Name)
	}
	fmt.Fprintf(h, "%v %v\n", svc.Spec.TaskTemplate.Placement, spec.StartFirst)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// holdsSecret says whether value contains one of the secret values.
func holdsSecret(value string, secrets []string) bool {
	for _, s := range secrets {
		if s != "" && strings.Contains(value, s) {
			return true
		}
	}
	return false
}

// fileOwner is the UID a file is given: the service's user when it is
// numeric, else root (a task's files are read before its user exists).
func fileOwner(user string) string {
	uid, _, _ := strings.Cut(user, ":")
	if uid != "" && strings.Trim(uid, "0123456789") == "" {
		return uid
	}
	return "0"
}
