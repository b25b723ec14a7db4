package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"sort"
	"time"
)

// ServiceSpec is the desired state of one service: everything needed to
// create each of its containers. Env holds resolved secret values, so a
// ServiceSpec is never printed or logged; plans print names and hashes.
type ServiceSpec struct {
	Project    string
	Name       string // the compose service, also its DNS alias on the network
	Image      string
	Replicas   int
	Command    []string
	Entrypoint []string
	Env        map[string]string
	User       string
	Ports      []PortSpec
	Mounts     []MountSpec
	Files      []FileSpec // delivered into the container before it starts
	Health     *HealthSpec
	StopGrace  time.Duration
	Memory     int64 // bytes; 0 = no limit
	NanoCPUs   int64 // 0 = no limit
	Restart    string
	OneOff     bool     // runs to completion (migrate); never kept running
	DependsOn  []string // services that must be healthy (or, for one-offs, done) first
	// StartFirst rolls the service by starting a new container and waiting
	// for it to be healthy before retiring an old one (web).
	StartFirst bool
	// Placement are the Swarm placement constraints of the service's
	// tasks; a single engine ignores them, and they are not hashed.
	Placement []string
	// ImageID is what Image resolves to on the engine now ("" when the
	// engine lacks it or nobody asked). It is not hashed: the planner
	// compares it with a container's own image ID, so that an image
	// rebuilt under the same tag replaces the containers of the old one.
	ImageID string
	// RunImage, when set, is what the container is created from instead
	// of Image: the image ID a rollback recorded, when Image's tag has
	// moved to another image since. It is not hashed either.
	RunImage string
}

// PortSpec publishes a container port on the host.
type PortSpec struct {
	HostIP        string `json:"host_ip,omitempty"`
	HostPort      string `json:"host_port"`
	ContainerPort string `json:"container_port"`
	Protocol      string `json:"protocol"`
}

// MountSpec mounts a named volume (Volume, the project-scoped name) or a
// host path (Bind).
type MountSpec struct {
	Volume   string `json:"volume,omitempty"`
	Bind     string `json:"bind,omitempty"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// FileSpec is a config or secret file copied into the container.
type FileSpec struct {
	Target string      `json:"target"`
	Mode   os.FileMode `json:"mode"`
	Data   []byte      `json:"-"`
	// Reload, when set, lets a running container take a new version of
	// the file in place: the file is left out of Hash, and the plan
	// reloads it instead of recreating the container.
	Reload *Reload `json:"reload,omitempty"`
}

// HealthSpec is a container healthcheck.
type HealthSpec struct {
	Test        []string      `json:"test"`
	Interval    time.Duration `json:"interval"`
	Timeout     time.Duration `json:"timeout"`
	StartPeriod time.Duration `json:"start_period"`
	Retries     int           `json:"retries"`
}

// Hash is a digest of exactly the fields that force a container to be
// recreated. Replicas, start order and dependencies do not: scaling and
// ordering never replace a running container. File contents and secret
// values are hashed in, so a new config or a rotated password recreates
// the containers that use them; the hash reveals neither. A file with a
// Reload is left out: a new version of it is applied in place.
func (s ServiceSpec) Hash() string {
	type fileDigest struct {
		Target string      `json:"target"`
		Mode   os.FileMode `json:"mode"`
		SHA256 string      `json:"sha256"`
	}
	canonical := struct {
		Image      string       `json:"image"`
		Command    []string     `json:"command"`
		Entrypoint []string     `json:"entrypoint"`
		Env        []string     `json:"env"`
		User       string       `json:"user"`
		Ports      []PortSpec   `json:"ports"`
		Mounts     []MountSpec  `json:"mounts"`
		Files      []fileDigest `json:"files"`
		Health     *HealthSpec  `json:"health"`
		Memory     int64        `json:"memory"`
		NanoCPUs   int64        `json:"nano_cpus"`
		Restart    string       `json:"restart"`
	}{Image: s.Image, Command: s.Command, Entrypoint: s.Entrypoint, User: s.User, Ports: s.Ports, Mounts: s.Mounts,
		Health: s.Health, Memory: s.Memory, NanoCPUs: s.NanoCPUs, Restart: s.Restart}
	for k, v := range s.Env {
		canonical.Env = append(canonical.Env, k+"="+v)
	}
	sort.Strings(canonical.Env)
	for _, f := range s.Files {
		if f.Reload != nil {
			continue
		}
		sum := sha256.Sum256(f.Data)
		canonical.Files = append(canonical.Files, fileDigest{f.Target, f.Mode, hex.EncodeToString(sum[:])})
	}
	sort.Slice(canonical.Files, func(i, j int) bool { return canonical.Files[i].Target < canonical.Files[j].Target })
	data, _ := json.Marshal(canonical)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// ReloadedFiles are the files of s a running container takes in place.
func (s ServiceSpec) ReloadedFiles() []FileSpec {
	var files []FileSpec
	for _, f := range s.Files {
		if f.Reload != nil {
			files = append(files, f)
		}
	}
	return files
}
