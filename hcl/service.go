package hcl

import (
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
)

// serviceHeader is what is known of a service before decoding its body.
type serviceHeader struct {
	kind      Kind
	declRange hcl.Range
}

// MaxServices bounds the services of one stack.
const MaxServices = 1000

// declareServices collects `service "<kind>" "<name>"` headers, rejecting
// unknown kinds and names used twice (across kinds, since names are DNS
// names on one network).
func (d *decoder) declareServices() {
	if blocks := d.blocks[blockService]; len(blocks) > MaxServices {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Too many services",
			Detail:   fmt.Sprintf("The stack declares %d services; obcd runs at most %d in one stack (OBCMS has 20). Split the stack, or use replicas for copies of one service.", len(blocks), MaxServices),
			Subject:  blocks[MaxServices].DefRange.Ptr(),
		})
		d.blocks[blockService] = blocks[:MaxServices] // the rest would only cost time
	}
	for _, block := range d.blocks[blockService] {
		kind, name := Kind(block.Labels[0]), block.Labels[1]
		if !knownKind(kind) {
			detail := fmt.Sprintf("%q is not a service kind.", kind)
			if s := nameSuggestion(string(kind), kindNames()); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unknown service kind",
				Detail:   detail + " Kinds: " + strings.Join(kindNames(), ", ") + ".",
				Subject:  block.LabelRanges[0].Ptr(),
			})
		}
		if first, ok := d.declared.services[name]; ok {
			d.diags = append(d.diags, duplicate("service", name, first.declRange, block.DefRange))
			continue
		}
		if !validName(name) {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid service name",
				Detail:   fmt.Sprintf("%q cannot be a DNS name on the stack network. Use lowercase letters, digits and '-', starting with a letter.", name),
				Subject:  block.LabelRanges[1].Ptr(),
			})
		}
		d.declared.services[name] = &serviceHeader{kind: kind, declRange: block.DefRange}
	}
}

func knownKind(kind Kind) bool {
	for _, k := range Kinds {
		if k == kind {
			return true
		}
	}
	return false
}

func kindNames() []string {
	out := make([]string, len(Kinds))
	for i, k := range Kinds {
		out[i] = string(k)
	}
	return out
}

// serviceBlock holds the arguments every kind accepts; the rest of the
// body is decoded against the kind's own schema.
type serviceBlock struct {
	Image    string            `hcl:"image,optional"`
	Replicas int               `hcl:"replicas,optional"`
	Port     int               `hcl:"port,optional"`
	CPUs     float64           `hcl:"cpus,optional"`
	Memory   string            `hcl:"memory,optional"`
	Ports    []string          `hcl:"ports,optional"`
	Address  string            `hcl:"address,optional"`
	Env      map[string]string `hcl:"env,optional"`
	Command  []string          `hcl:"command,optional"`
	// Placement are Swarm placement constraints, such as
	// "node.labels.obcd.db == true"; a single engine ignores them.
	Placement []string     `hcl:"placement,optional"`
	Health    *healthBlock `hcl:"healthcheck,block"`
	Build     *buildBlock  `hcl:"build,block"`
	Remain    hcl.Body     `hcl:",remain"`
}

// buildBlock builds the service's image from a directory through the
// Docker API when the image is not on the engine.
type buildBlock struct {
	Context    string `hcl:"context"`
	Dockerfile string `hcl:"dockerfile,optional"`
}

type healthBlock struct {
	Test        []string `hcl:"test"`
	Interval    string   `hcl:"interval,optional"`
	Timeout     string   `hcl:"timeout,optional"`
	Retries     int      `hcl:"retries,optional"`
	StartPeriod string   `hcl:"start_period,optional"`
}

type webBlock struct {
	Workers int `hcl:"workers,optional"`
	Timeout int `hcl:"timeout,optional"`
}

type nginxBlock struct {
	Upstream   hcl.Expression `hcl:"upstream,optional"`
	HTTPPort   int            `hcl:"http_port,optional"`
	HTTPSPort  int            `hcl:"https_port,optional"`
	StatusPort int            `hcl:"status_port,optional"`
	TLSCert    string         `hcl:"tls_cert,optional"`
	TLSKey     string         `hcl:"tls_key,optional"`
}

type postgresBlock struct {
	Database            string         `hcl:"database,optional"`
	MaxConnections      int            `hcl:"max_connections,optional"`
	SharedBuffers       string         `hcl:"shared_buffers,optional"`
	SuperuserPassword   hcl.Expression `hcl:"superuser_password,optional"`
	ReplicationUser     string         `hcl:"replication_user,optional"`
	ReplicationPassword hcl.Expression `hcl:"replication_password,optional"`
}

type pgbouncerBlock struct {
	Server          hcl.Expression `hcl:"server,optional"`
	PoolMode        string         `hcl:"pool_mode,optional"`
	AuthType        string         `hcl:"auth_type,optional"`
	MaxClientConn   int            `hcl:"max_client_conn,optional"`
	DefaultPoolSize int            `hcl:"default_pool_size,optional"`
	Users           []userBlock    `hcl:"user,block"`
}

type userBlock struct {
	Name      string         `hcl:"name,label"`
	Password  hcl.Expression `hcl:"password"`
	Admin     bool           `hcl:"admin,optional"`
	Stats     bool           `hcl:"stats,optional"`
	DeclRange hcl.Range      `hcl:",def_range"`
}

type redisBlock struct {
	MaxMemory       string `hcl:"maxmemory,optional"`
	MaxMemoryPolicy string `hcl:"maxmemory_policy,optional"`
}

type celeryBlock struct {
	Concurrency int      `hcl:"concurrency,optional"`
	Queues      []string `hcl:"queues,optional"`
	LogLevel    string   `hcl:"log_level,optional"`
}

type grafanaBlock struct {
	AdminUser     string         `hcl:"admin_user,optional"`
	AdminPassword hcl.Expression `hcl:"admin_password,optional"`
}

type exporterBlock struct {
	Type   string         `hcl:"type"`
	Target hcl.Expression `hcl:"target,optional"`
}

type backupBlock struct {
	Database hcl.Expression `hcl:"database,optional"`
	Interval string         `hcl:"interval,optional"`
	KeepDays int            `hcl:"keep_days,optional"`
}

type emptyBlock struct{}

// kindDefaults returns, for a kind, the kind-specific block pre-filled
// with defaults, plus the common defaults.
func kindDefaults(kind Kind, stack *Stack) (serviceBlock, any) {
	common := serviceBlock{Replicas: 1}
	switch kind {
	case KindWeb:
		common.Image, common.Port = stack.AppImage+":"+stack.Version, 8000
		return common, &webBlock{Workers: 4, Timeout: 30}
	case KindNginx:
		common.Image, common.Port = "nginx:1.22", 80
		return common, &nginxBlock{HTTPPort: 80, HTTPSPort: 443, StatusPort: 8081,
			TLSCert: "/etc/nginx/tls/fullchain.pem", TLSKey: "/etc/nginx/tls/privkey.pem"}
	case KindPostgres:
		common.Image, common.Port, common.Replicas = "postgres:15-bookworm", 5432, 0
		return common, &postgresBlock{Database: stack.Name, MaxConnections: 100, SharedBuffers: "128MB", ReplicationUser: "replicator"}
	case KindPgBouncer:
		common.Image, common.Port = "edoburu/pgbouncer:1.18.0", 6432
		return common, &pgbouncerBlock{PoolMode: "transaction", AuthType: "scram-sha-256", MaxClientConn: 1000, DefaultPoolSize: 20}
	case KindRedis:
		common.Image, common.Port = "redis:7-bookworm", 6379
		return common, &redisBlock{MaxMemoryPolicy: "allkeys-lru"}
	case KindCeleryWorker:
		common.Image = stack.AppImage + ":" + stack.Version
		return common, &celeryBlock{Concurrency: 2, Queues: []string{"celery"}, LogLevel: "INFO"}
	case KindCeleryBeat:
		common.Image = stack.AppImage + ":" + stack.Version
		return common, &celeryBlock{LogLevel: "INFO"}
	case KindPrometheus:
		common.Image, common.Port = "prom/prometheus:v2.42.0", 9090
		return common, &emptyBlock{}
	case KindAlertmanager:
		common.Image, common.Port = "prom/alertmanager:v0.25.0", 9093
		return common, &emptyBlock{}
	case KindGrafana:
		common.Image, common.Port = "grafana/grafana:10.4.2", 3000
		return common, &grafanaBlock{AdminUser: "admin"}
	case KindExporter:
		return common, &exporterBlock{}
	case KindBackup:
		common.Image = "postgres:15-bookworm"
		return common, &backupBlock{Interval: "24h", KeepDays: 7}
	}
	return common, &emptyBlock{}
}

// placementConstraint is a Swarm placement constraint: a node attribute,
// == or !=, and a value.
var placementConstraint = regexp.MustCompile(`^(node\.(id|hostname|role|platform\.os|platform\.arch|labels\.[A-Za-z0-9_.-]+)|engine\.labels\.[A-Za-z0-9_.-]+)\s*(==|!=)\s*\S+$`)

// placementProblem says why c is not a placement constraint Swarm takes,
// or "".
func placementProblem(c string) string {
	if !placementConstraint.MatchString(strings.TrimSpace(c)) {
		return "is not ATTRIBUTE == VALUE or ATTRIBUTE != VALUE over node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.* or engine.labels.*"
	}
	return ""
}

// exporterImages are the default images of each exporter type.
var exporterImages = map[string]string{
	ExporterNode:      "prom/node-exporter:v1.5.0",
	ExporterPostgres:  "quay.io/prometheuscommunity/postgres-exporter:v0.11.1",
	ExporterPgBouncer: "prometheuscommunity/pgbouncer-exporter:v0.7.0",
	ExporterRedis:     "oliver006/redis_exporter:v1.45.0",
	ExporterNginx:     "nginx/nginx-prometheus-exporter:0.11.0",
	ExporterCelery:    "danihodovic/celery-exporter:0.10.3",
}

func (d *decoder) decodeServices(ctx *hcl.EvalContext, stack *Stack) []*Service {
	var out []*Service
	seen := map[string]bool{}
	for _, block := range d.blocks[blockService] {
		kind, name := Kind(block.Labels[0]), block.Labels[1]
		if seen[name] || !knownKind(kind) {
			continue
		}
		seen[name] = true
		if svc := d.decodeService(block, kind, name, ctx, stack); svc != nil {
			out = append(out, svc)
		}
	}
	return out
}

func (d *decoder) decodeService(block *hcl.Block, kind Kind, name string, ctx *hcl.EvalContext, stack *Stack) *Service {
	common, specific := kindDefaults(kind, stack)
	schemaDiags, reported := checkSchema(block.Body, &common, specific)
	d.addDiags(schemaDiags)
	d.addDiags(dropReported(gohcl.DecodeBody(block.Body, ctx, &common), reported))
	if common.Remain != nil {
		d.addDiags(dropReported(gohcl.DecodeBody(common.Remain, ctx, specific), reported))
	}
	ranges := attrRanges(block.Body)
	if override := d.overrides.services[name]; override != nil {
		d.addDiags(applyOverride(override, ctx, ranges, &common, specific))
	}

	svc := &Service{
		Kind: kind, Name: name,
		Image: common.Image, Replicas: common.Replicas, Port: common.Port,
		CPUs: common.CPUs, Memory: common.Memory, Ports: common.Ports, Address: common.Address,
		Env: common.Env, Command: common.Command, Placement: common.Placement,
		DeclRange: block.DefRange, Ranges: ranges,
	}
	placementAt, ok := ranges["placement"]
	if !ok {
		placementAt = block.DefRange
	}
	for _, c := range common.Placement {
		if why := placementProblem(c); why != "" {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid placement",
				Detail: fmt.Sprintf("placement %q %s. Write a Swarm constraint: node.role == manager, node.hostname != worker1, node.labels.obcd.db == true (label a node with docker node update --label-add obcd.db=true NODE).",
					c, why),
				Subject: placementAt.Ptr(),
			})
		}
	}
	if common.Build != nil {
		svc.Build = &Build{Context: common.Build.Context, Dockerfile: common.Build.Dockerfile}
		if svc.Build.Dockerfile == "" {
			svc.Build.Dockerfile = "Dockerfile"
		}
		if !filepath.IsAbs(svc.Build.Context) {
			svc.Build.Context = filepath.Join(filepath.Dir(d.filename), svc.Build.Context)
		}
	}
	if common.Health != nil {
		h := common.Health
		svc.Health = &Health{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, Retries: h.Retries, StartPeriod: h.StartPeriod}
	}
	d.fillKind(svc, specific, block)
	return svc
}

// fillKind copies the kind-specific block into the model, resolving its
// references to other services and to secrets.
func (d *decoder) fillKind(svc *Service, specific any, block *hcl.Block) {
	switch b := specific.(type) {
	case *webBlock:
		svc.Web = &Web{Workers: b.Workers, Timeout: b.Timeout}
	case *nginxBlock:
		svc.Nginx = &Nginx{
			Upstream: d.resolveService(b.Upstream, "upstream", KindWeb),
			HTTPPort: b.HTTPPort, HTTPSPort: b.HTTPSPort, StatusPort: b.StatusPort,
			TLSCert: b.TLSCert, TLSKey: b.TLSKey,
		}
	case *postgresBlock:
		svc.Postgres = &Postgres{
			Database: b.Database, MaxConnections: b.MaxConnections, SharedBuffers: b.SharedBuffers,
			SuperuserPassword:   d.resolveSecret(b.SuperuserPassword, "superuser_password"),
			ReplicationUser:     b.ReplicationUser,
			ReplicationPassword: d.resolveSecret(b.ReplicationPassword, "replication_password"),
		}
	case *pgbouncerBlock:
		pb := &PgBouncer{
			Server:   d.resolveService(b.Server, "server", KindPostgres),
			PoolMode: b.PoolMode, AuthType: b.AuthType,
			MaxClientConn: b.MaxClientConn, DefaultPoolSize: b.DefaultPoolSize,
		}
		seen := map[string]hcl.Range{}
		for _, u := range b.Users {
			if first, dup := seen[u.Name]; dup {
				d.diags = append(d.diags, duplicate("pgbouncer user", u.Name, first, u.DeclRange))
				continue
			}
			seen[u.Name] = u.DeclRange
			pb.Users = append(pb.Users, &PgUser{
				Name: u.Name, Password: d.resolveSecret(u.Password, "password"),
				Admin: u.Admin, Stats: u.Stats, DeclRange: u.DeclRange,
			})
		}
		svc.PgBouncer = pb
	case *redisBlock:
		svc.Redis = &Redis{MaxMemory: b.MaxMemory, MaxMemoryPolicy: b.MaxMemoryPolicy}
	case *celeryBlock:
		svc.Celery = &Celery{Concurrency: b.Concurrency, Queues: b.Queues, LogLevel: b.LogLevel}
	case *grafanaBlock:
		svc.Grafana = &Grafana{AdminUser: b.AdminUser, AdminPassword: d.resolveSecret(b.AdminPassword, "admin_password")}
	case *exporterBlock:
		d.fillExporter(svc, b, block)
	case *backupBlock:
		svc.Backup = &Backup{
			Database: d.resolveService(b.Database, "database", KindPostgres),
			Interval: b.Interval, KeepDays: b.KeepDays,
		}
	}
}

// exporterTargets says which service kind each exporter type watches.
var exporterTargets = map[string][]Kind{
	ExporterPostgres:  {KindPostgres},
	ExporterPgBouncer: {KindPgBouncer},
	ExporterRedis:     {KindRedis},
	ExporterNginx:     {KindNginx},
	ExporterCelery:    {KindRedis},
}

func (d *decoder) fillExporter(svc *Service, b *exporterBlock, block *hcl.Block) {
	port, known := ExporterTypes[b.Type]
	if !known {
		detail := fmt.Sprintf("%q is not an exporter type. Types: %s.", b.Type, strings.Join(slices.Sorted(maps.Keys(ExporterTypes)), ", "))
		d.diags = append(d.diags, attrDiag(block.Body, "type", "Unknown exporter type", detail))
		return
	}
	svc.Exporter = &Exporter{Type: b.Type}
	if wants, needsTarget := exporterTargets[b.Type]; needsTarget {
		if !exprIsSet(b.Target) {
			d.diags = append(d.diags, attrDiag(block.Body, "target", "Missing exporter target",
				fmt.Sprintf("A %s exporter needs target = service.<name> naming the %s service it watches.", b.Type, joinKinds(wants))))
		}
		svc.Exporter.Target = d.resolveService(b.Target, "target", wants...)
	}
	if svc.Port == 0 {
		svc.Port = port
	}
	if svc.Image == "" {
		svc.Image = exporterImages[b.Type]
	}
}
