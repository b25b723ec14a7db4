package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"
)

// engineFake fakes DockerAPI with function fields; a call whose field is
// nil fails the test. calls records every call's method name in order.
type engineFake struct {
	t     *testing.T
	mu    sync.Mutex
	calls []string

	list       func(client.ContainerListOptions) (client.ContainerListResult, error)
	imgPull    func(string, client.ImagePullOptions) (client.ImagePullResponse, error)
	create     func(client.ContainerCreateOptions) (client.ContainerCreateResult, error)
	copyTo     func(containerID string, options client.CopyToContainerOptions) (client.CopyToContainerResult, error)
	start      func(containerID string) (client.ContainerStartResult, error)
	inspect    func(containerID string) (client.ContainerInspectResult, error)
	wait       func(ctx context.Context, containerID string, options client.ContainerWaitOptions) client.ContainerWaitResult
	logs       func(containerID string, options client.ContainerLogsOptions) (client.ContainerLogsResult, error)
	stop       func(containerID string, options client.ContainerStopOptions) (client.ContainerStopResult, error)
	remove     func(containerID string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	netInspect func(networkID string) (client.NetworkInspectResult, error)
	netCreate  func(name string, options client.NetworkCreateOptions) (client.NetworkCreateResult, error)
	disconnect func(networkID string, options client.NetworkDisconnectOptions) (client.NetworkDisconnectResult, error)
	connect    func(networkID string, options client.NetworkConnectOptions) (client.NetworkConnectResult, error)
	netRemove  func(networkID string) (client.NetworkRemoveResult, error)
	volCreate  func(client.VolumeCreateOptions) (client.VolumeCreateResult, error)
	volList    func(client.VolumeListOptions) (client.VolumeListResult, error)
	volRemove  func(volumeID string) (client.VolumeRemoveResult, error)
	imgInspect func(ref string) (client.ImageInspectResult, error)
	imgTag     func(client.ImageTagOptions) (client.ImageTagResult, error)
	imgBuild   func(buildContext io.Reader, options client.ImageBuildOptions) (client.ImageBuildResult, error)
	events     func(client.EventsListOptions) client.EventsResult
	imgRemove  func(ref string) (client.ImageRemoveResult, error)
	kill       func(containerID, signal string) (client.ContainerKillResult, error)
	copyFrom   func(containerID, path string) (client.CopyFromContainerResult, error)
	execCreate func(containerID string, options client.ExecCreateOptions) (client.ExecCreateResult, error)
	execAttach func(execID string) (client.ExecAttachResult, error)
	execInsp   func(execID string) (client.ExecInspectResult, error)
}

func (f *engineFake) ContainerKill(_ context.Context, containerID string, options client.ContainerKillOptions) (client.ContainerKillResult, error) {
	if err := f.called("ContainerKill", f.kill); err != nil {
		return client.ContainerKillResult{}, err
	}
	return f.kill(containerID, options.Signal)
}

func (f *engineFake) CopyFromContainer(_ context.Context, containerID string, options client.CopyFromContainerOptions) (client.CopyFromContainerResult, error) {
	if err := f.called("CopyFromContainer", f.copyFrom); err != nil {
		return client.CopyFromContainerResult{}, err
	}
	return f.copyFrom(containerID, options.SourcePath)
}

func (f *engineFake) ExecCreate(_ context.Context, containerID string, options client.ExecCreateOptions) (client.ExecCreateResult, error) {
	if err := f.called("ExecCreate", f.execCreate); err != nil {
		return client.ExecCreateResult{}, err
	}
	return f.execCreate(containerID, options)
}

func (f *engineFake) ExecAttach(_ context.Context, execID string, _ client.ExecAttachOptions) (client.ExecAttachResult, error) {
	if err := f.called("ExecAttach", f.execAttach); err != nil {
		return client.ExecAttachResult{}, err
	}
	return f.execAttach(execID)
}

func (f *engineFake) ExecInspect(_ context.Context, execID string, _ client.ExecInspectOptions) (client.ExecInspectResult, error) {
	if err := f.called("ExecInspect", f.execInsp); err != nil {
		return client.ExecInspectResult{}, err
	}
	return f.execInsp(execID)
}

var _ DockerAPI = (*engineFake)(nil)

// called records the call and fails the test when the fake has no answer.
func (f *engineFake) called(method string, answer any) error {
	f.mu.Lock()
	f.calls = append(f.calls, method)
	f.mu.Unlock()
	if reflect.ValueOf(answer).IsNil() {
		f.t.Errorf("unexpected call to %s", method)
		return fmt.Errorf("unexpected call to %s", method)
	}
	return nil
}

func (f *engineFake) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *engineFake) ContainerList(_ context.Context, options client.ContainerListOptions) (client.ContainerListResult, error) {
	if err := f.called("ContainerList", f.list); err != nil {
		return client.ContainerListResult{}, err
	}
	return f.list(options)
}

func (f *engineFake) ContainerCreate(_ context.Context, options client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
	if err := f.called("ContainerCreate", f.create); err != nil {
		return client.ContainerCreateResult{}, err
	}
	return f.create(options)
}

func (f *engineFake) CopyToContainer(_ context.Context, containerID string, options client.CopyToContainerOptions) (client.CopyToContainerResult, error) {
	if err := f.called("CopyToContainer", f.copyTo); err != nil {
		return client.CopyToContainerResult{}, err
	}
	return f.copyTo(containerID, options)
}

func (f *engineFake) ContainerStart(_ context.Context, containerID string, _ client.ContainerStartOptions) (client.ContainerStartResult, error) {
	if err := f.called("ContainerStart", f.start); err != nil {
		return client.ContainerStartResult{}, err
	}
	return f.start(containerID)
}

func (f *engineFake) ContainerInspect(_ context.Context, containerID string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	if err := f.called("ContainerInspect", f.inspect); err != nil {
		return client.ContainerInspectResult{}, err
	}
	return f.inspect(containerID)
}

func (f *engineFake) ContainerWait(ctx context.Context, containerID string, options client.ContainerWaitOptions) client.ContainerWaitResult {
	if err := f.called("ContainerWait", f.wait); err != nil {
		errC := make(chan error, 1)
		errC <- err
		return client.ContainerWaitResult{Error: errC}
	}
	return f.wait(ctx, containerID, options)
}

func (f *engineFake) ContainerLogs(_ context.Context, containerID string, options client.ContainerLogsOptions) (client.ContainerLogsResult, error) {
	if err := f.called("ContainerLogs", f.logs); err != nil {
		return nil, err
	}
	return f.logs(containerID, options)
}

func (f *engineFake) ContainerStop(_ context.Context, containerID string, options client.ContainerStopOptions) (client.ContainerStopResult, error) {
	if err := f.called("ContainerStop", f.stop); err != nil {
		return client.ContainerStopResult{}, err
	}
	return f.stop(containerID, options)
}

func (f *engineFake) ContainerRemove(_ context.Context, containerID string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
	if err := f.called("ContainerRemove", f.remove); err != nil {
		return client.ContainerRemoveResult{}, err
	}
	return f.remove(containerID, options)
}

func (f *engineFake) NetworkInspect(_ context.Context, networkID string, _ client.NetworkInspectOptions) (client.NetworkInspectResult, error) {
	if err := f.called("NetworkInspect", f.netInspect); err != nil {
		return client.NetworkInspectResult{}, err
	}
	return f.netInspect(networkID)
}

func (f *engineFake) NetworkCreate(_ context.Context, name string, options client.NetworkCreateOptions) (client.NetworkCreateResult, error) {
	if err := f.called("NetworkCreate", f.netCreate); err != nil {
		return client.NetworkCreateResult{}, err
	}
	return f.netCreate(name, options)
}

func (f *engineFake) NetworkDisconnect(_ context.Context, networkID string, options client.NetworkDisconnectOptions) (client.NetworkDisconnectResult, error) {
	if err := f.called("NetworkDisconnect", f.disconnect); err != nil {
		return client.NetworkDisconnectResult{}, err
	}
	return f.disconnect(networkID, options)
}

func (f *engineFake) NetworkConnect(_ context.Context, networkID string, options client.NetworkConnectOptions) (client.NetworkConnectResult, error) {
	if err := f.called("NetworkConnect", f.connect); err != nil {
		return client.NetworkConnectResult{}, err
	}
	return f.connect(networkID, options)
}

func (f *engineFake) NetworkRemove(_ context.Context, networkID string, _ client.NetworkRemoveOptions) (client.NetworkRemoveResult, error) {
	if err := f.called("NetworkRemove", f.netRemove); err != nil {
		return client.NetworkRemoveResult{}, err
	}
	return f.netRemove(networkID)
}

func (f *engineFake) VolumeCreate(_ context.Context, options client.VolumeCreateOptions) (client.VolumeCreateResult, error) {
	if err := f.called("VolumeCreate", f.volCreate); err != nil {
		return client.VolumeCreateResult{}, err
	}
	return f.volCreate(options)
}

func (f *engineFake) VolumeList(_ context.Context, options client.VolumeListOptions) (client.VolumeListResult, error) {
	if err := f.called("VolumeList", f.volList); err != nil {
		return client.VolumeListResult{}, err
	}
	return f.volList(options)
}

func (f *engineFake) VolumeRemove(_ context.Context, volumeID string, _ client.VolumeRemoveOptions) (client.VolumeRemoveResult, error) {
	if err := f.called("VolumeRemove", f.volRemove); err != nil {
		return client.VolumeRemoveResult{}, err
	}
	return f.volRemove(volumeID)
}

func (f *engineFake) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	if err := f.called("ImageInspect", f.imgInspect); err != nil {
		return client.ImageInspectResult{}, err
	}
	return f.imgInspect(ref)
}

func (f *engineFake) ImageTag(_ context.Context, options client.ImageTagOptions) (client.ImageTagResult, error) {
	if err := f.called("ImageTag", f.imgTag); err != nil {
		return client.ImageTagResult{}, err
	}
	return f.imgTag(options)
}

func (f *engineFake) ImagePull(_ context.Context, ref string, options client.ImagePullOptions) (client.ImagePullResponse, error) {
	if err := f.called("ImagePull", f.imgPull); err != nil {
		return nil, err
	}
	return f.imgPull(ref, options)
}

func (f *engineFake) ImageBuild(_ context.Context, buildContext io.Reader, options client.ImageBuildOptions) (client.ImageBuildResult, error) {
	if err := f.called("ImageBuild", f.imgBuild); err != nil {
		return client.ImageBuildResult{}, err
	}
	return f.imgBuild(buildContext, options)
}

func (f *engineFake) ImageRemove(_ context.Context, ref string, _ client.ImageRemoveOptions) (client.ImageRemoveResult, error) {
	if err := f.called("ImageRemove", f.imgRemove); err != nil {
		return client.ImageRemoveResult{}, err
	}
	return f.imgRemove(ref)
}

func (f *engineFake) Events(_ context.Context, options client.EventsListOptions) client.EventsResult {
	if err := f.called("Events", f.events); err != nil {
		errs := make(chan error, 1)
		errs <- err
		return client.EventsResult{Err: errs}
	}
	return f.events(options)
}

// engineLogStream is a multiplexed log stream, as the engine sends for a
// container without a TTY: each frame has an 8-byte header.
func engineLogStream(frames ...string) client.ContainerLogsResult {
	var buf bytes.Buffer
	for i, frame := range frames {
		header := [8]byte{byte(1 + i%2)} // alternate stdout and stderr
		binary.BigEndian.PutUint32(header[4:], uint32(len(frame)))
		buf.Write(header[:])
		buf.WriteString(frame)
	}
	return io.NopCloser(&buf)
}

func TestEngine_ObserveParsesLabelsAndHealthAndSortsByServiceThenNumber(t *testing.T) {
	labels := func(service, number, oneOff string) map[string]string {
		return map[string]string{LabelProject: "shop", LabelService: service, LabelContainerNumber: number, LabelOneOff: oneOff,
			LabelHash: "hash-" + service, LabelRelease: "r7"}
	}
	fake := &engineFake{t: t, list: func(options client.ContainerListOptions) (client.ContainerListResult, error) {
		if !options.All || !options.Filters["label"][LabelProject+"=shop"] || len(options.Filters) != 1 {
			t.Errorf("list options %+v, want all containers with label %s=shop only", options, LabelProject)
		}
		return client.ContainerListResult{Items: []container.Summary{
			{ID: "c10", Names: []string{"/shop-web-10"}, Labels: labels("web", "10", "False"), State: container.StateRunning, Status: "Up 3 minutes (unhealthy)"},
			{ID: "c2", Names: []string{"/shop-web-2"}, Labels: labels("web", "2", "False"), State: container.StateRunning, Status: "Up 5 seconds (healthy)",
				Image: "shop/web:v2", ImageID: "sha256:v2", Created: 1700000000},
			{ID: "crun", Names: []string{"/shop-web-run-r7"}, Labels: labels("web", "1", "True"), State: container.StateExited, Status: "Exited (0) 1 minute ago"},
			{ID: "c1", Names: []string{"/other/alias", "/shop-web-1"}, Labels: labels("web", "1", "False"), State: container.StateRunning, Status: "Up 1 second (health: starting)"},
			{ID: "w1", Names: []string{"/shop-worker-1"}, Labels: labels("worker", "1", "False"), State: container.StateRunning, Status: "Up 1 hour",
				Health: &container.HealthSummary{Status: container.NoHealthcheck}},
			{ID: "d1", Names: []string{"/shop-db-1"}, Labels: labels("db", "1", "False"), State: container.StateExited, Status: "Exited (137) 2 hours ago (healthy)"},
			{ID: "b1", Names: []string{"/shop-beat-1"}, Labels: labels("beat", "1", "False"), State: container.StateRunning, Status: "Up 1 hour",
				Health: &container.HealthSummary{Status: container.Unhealthy}},
		}}, nil
	}}
	containers, err := (&Engine{API: fake}).Observe(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range containers {
		got = append(got, fmt.Sprintf("%s %s#%d state=%s health=%s oneoff=%t", c.Name, c.Service, c.Number, c.State, c.Health, c.OneOff))
	}
	want := []string{
		"shop-beat-1 beat#1 state=running health=unhealthy oneoff=false",
		"shop-db-1 db#1 state=exited health= oneoff=false",
		"shop-web-1 web#1 state=running health=starting oneoff=false",
		"shop-web-run-r7 web#1 state=exited health= oneoff=true",
		"shop-web-2 web#2 state=running health=healthy oneoff=false",
		"shop-web-10 web#10 state=running health=unhealthy oneoff=false",
		"shop-worker-1 worker#1 state=running health= oneoff=false",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("observed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	web2 := containers[4]
	if web2.ID != "c2" || web2.Hash != "hash-web" || web2.Release != "r7" || web2.Image != "shop/web:v2" || web2.ImageID != "sha256:v2" ||
		!web2.Created.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("web-2 = %+v, want its ID, hash, release, image and creation time", web2)
	}
	if calls := fake.callList(); len(calls) != 1 {
		t.Errorf("calls %v, want one ContainerList", calls)
	}
}

func TestEngine_ObserveErrorNamesTheProject(t *testing.T) {
	fake := &engineFake{t: t, list: func(client.ContainerListOptions) (client.ContainerListResult, error) {
		return client.ContainerListResult{}, errors.New("Cannot connect to the Docker daemon")
	}}
	if _, err := (&Engine{API: fake}).Observe(context.Background(), "shop"); err == nil || !strings.Contains(err.Error(), "project shop: Cannot connect") {
		t.Fatalf("error %v, want one naming the project", err)
	}
}

// engineWebSpec is a service spec using every field Create maps.
func engineWebSpec() ServiceSpec {
	return ServiceSpec{
		Project: "shop", Name: "web", Image: "shop/web:v2", Replicas: 2,
		Command: []string{"gunicorn", "shop.wsgi"}, Entrypoint: []string{"/entrypoint.sh"},
		Env:  map[string]string{"DJANGO_SETTINGS_MODULE": "shop.settings", "DATABASE_URL": "postgres://db/shop"},
		User: "1000:1001",
		Ports: []PortSpec{{HostIP: "127.0.0.1", HostPort: "8000", ContainerPort: "8000", Protocol: "tcp"},
			{HostPort: "9000", ContainerPort: "9000"}},
		Mounts: []MountSpec{{Volume: "media", Target: "/srv/media"}, {Bind: "/var/log/shop", Target: "/var/log/app", ReadOnly: true}},
		Files: []FileSpec{
			{Target: "/etc/shop/secret.env", Mode: 0o600, Data: []byte("SECRET_KEY=s3cret\n")},
			{Target: "/etc/shop/conf.d/app.ini", Mode: 0o644, Data: []byte("[app]\n")},
		},
		Health:    &HealthSpec{Test: []string{"CMD", "/app", "-health"}, Interval: 5 * time.Second, Timeout: 2 * time.Second, StartPeriod: 10 * time.Second, Retries: 3},
		StopGrace: 1500 * time.Millisecond, Memory: 512 << 20, NanoCPUs: 1_500_000_000,
	}
}

// engineCreateFake answers creates with ID "id-<name>", conflicting on the
// names in held, and records the options and the delivered tar.
func engineCreateFake(t *testing.T, held ...string) (*engineFake, *[]client.ContainerCreateOptions, *[]byte) {
	var created []client.ContainerCreateOptions
	var delivered []byte
	fake := &engineFake{t: t,
		create: func(options client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
			created = append(created, options)
			for _, name := range held {
				if options.Name == name {
					return client.ContainerCreateResult{}, cerrdefs.ErrConflict.WithMessage("Conflict. The container name \"/" + name + "\" is already in use")
				}
			}
			return client.ContainerCreateResult{ID: "id-" + options.Name}, nil
		},
		copyTo: func(containerID string, options client.CopyToContainerOptions) (client.CopyToContainerResult, error) {
			if options.DestinationPath != "/" || options.CopyUIDGID || options.AllowOverwriteDirWithFile {
				t.Errorf("copy options %+v, want a plain copy to /", options)
			}
			data, err := io.ReadAll(options.Content)
			delivered = data
			return client.CopyToContainerResult{}, err
		},
	}
	return fake, &created, &delivered
}

func TestEngine_CreateSetsComposeLabelsNameAndConfig(t *testing.T) {
	fake, created, _ := engineCreateFake(t)
	spec := engineWebSpec()
	got, err := (&Engine{API: fake}).Create(context.Background(), spec, "shop-web-2", 2, "20260514T101500Z")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "id-shop-web-2" || got.Name != "shop-web-2" || got.Number != 2 || got.Service != "web" || got.Hash != spec.Hash() ||
		got.Release != "20260514T101500Z" || got.State != "created" || got.OneOff {
		t.Errorf("created %+v", got)
	}
	options := (*created)[0]
	if options.Name != "shop-web-2" {
		t.Errorf("name %q, want shop-web-2", options.Name)
	}
	config, host := options.Config, options.HostConfig
	wantLabels := map[string]string{
		LabelProject: "shop", LabelService: "web", LabelContainerNumber: "2", LabelOneOff: "False",
		LabelComposeConfigHash: spec.Hash(), LabelRelease: "20260514T101500Z", LabelHash: spec.Hash(),
	}
	if !reflect.DeepEqual(config.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", config.Labels, wantLabels)
	}
	if want := []string{"DATABASE_URL=postgres://db/shop", "DJANGO_SETTINGS_MODULE=shop.settings"}; !reflect.DeepEqual(config.Env, want) {
		t.Errorf("env %v, want %v (sorted)", config.Env, want)
	}
	if config.Image != "shop/web:v2" || strings.Join(config.Cmd, " ") != "gunicorn shop.wsgi" || strings.Join(config.Entrypoint, " ") != "/entrypoint.sh" || config.User != "1000:1001" {
		t.Errorf("image %q cmd %v entrypoint %v user %q", config.Image, config.Cmd, config.Entrypoint, config.User)
	}
	if hc := config.Healthcheck; hc == nil || strings.Join(hc.Test, " ") != "CMD /app -health" || hc.Interval != 5*time.Second || hc.Timeout != 2*time.Second ||
		hc.StartPeriod != 10*time.Second || hc.Retries != 3 {
		t.Errorf("healthcheck %+v", config.Healthcheck)
	}
	if config.StopTimeout == nil || *config.StopTimeout != 2 {
		t.Errorf("stop timeout %v, want 2s (1.5s rounded up)", config.StopTimeout)
	}
	p8000, p9000 := network.MustParsePort("8000/tcp"), network.MustParsePort("9000/tcp")
	if _, ok := config.ExposedPorts[p8000]; !ok || len(config.ExposedPorts) != 2 {
		t.Errorf("exposed ports %v, want 8000/tcp and 9000/tcp", config.ExposedPorts)
	}
	wantBindings := network.PortMap{p8000: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: "8000"}}, p9000: {{HostPort: "9000"}}}
	if !reflect.DeepEqual(host.PortBindings, wantBindings) {
		t.Errorf("port bindings %v, want %v", host.PortBindings, wantBindings)
	}
	wantMounts := []mount.Mount{{Type: mount.TypeVolume, Source: "shop_media", Target: "/srv/media"},
		{Type: mount.TypeBind, Source: "/var/log/shop", Target: "/var/log/app", ReadOnly: true}}
	if !reflect.DeepEqual(host.Mounts, wantMounts) {
		t.Errorf("mounts %+v, want %+v", host.Mounts, wantMounts)
	}
	if host.RestartPolicy.Name != container.RestartPolicyUnlessStopped || host.Memory != 512<<20 || host.NanoCPUs != 1_500_000_000 {
		t.Errorf("restart %+v memory %d cpus %d", host.RestartPolicy, host.Memory, host.NanoCPUs)
	}
	endpoint := options.NetworkingConfig.EndpointsConfig["shop_default"]
	if host.NetworkMode != "shop_default" || endpoint == nil || !reflect.DeepEqual(endpoint.Aliases, []string{"web"}) || len(options.NetworkingConfig.EndpointsConfig) != 1 {
		t.Errorf("network mode %q, endpoints %+v, want shop_default with alias web", host.NetworkMode, options.NetworkingConfig.EndpointsConfig)
	}
	if calls := strings.Join(fake.callList(), " "); calls != "ContainerCreate CopyToContainer" {
		t.Errorf("calls %s, want a create and a copy: Create does not start", calls)
	}
}

// TestEngine_CreateRefusesATakenNameWithoutRenumbering: the plan chose
// the name; a container that holds it means the engine changed since, so
// Create says so and picks no other name or number.
func TestEngine_CreateRefusesATakenNameWithoutRenumbering(t *testing.T) {
	fake, created, _ := engineCreateFake(t, "shop-web-1")
	spec := engineWebSpec()
	spec.Files = nil
	_, err := (&Engine{API: fake}).Create(context.Background(), spec, "shop-web-1", 1, "r1")
	if !errors.Is(err, ErrNameTaken) || !strings.Contains(err.Error(), "shop-web-1") {
		t.Fatalf("err = %v, want ErrNameTaken naming shop-web-1", err)
	}
	if len(*created) != 1 {
		t.Errorf("%d creates, want exactly the planned one", len(*created))
	}
}

func TestEngine_CreateErrorNamesTheContainer(t *testing.T) {
	fake := &engineFake{t: t, create: func(client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
		return client.ContainerCreateResult{}, cerrdefs.ErrNotFound.WithMessage("No such image: shop/web:v2")
	}}
	_, err := (&Engine{API: fake}).Create(context.Background(), engineWebSpec(), "shop-web-1", 1, "r1")
	if err == nil || !strings.Contains(err.Error(), "create container shop-web-1: No such image") || !cerrdefs.IsNotFound(err) {
		t.Fatalf("error %v, want one naming the container and wrapping the engine's", err)
	}
}

type engineTarEntry struct {
	kind     byte
	mode     int64
	uid, gid int
	data     string
}

func engineReadTar(t *testing.T, data []byte) ([]string, map[string]engineTarEntry) {
	t.Helper()
	reader := tar.NewReader(bytes.NewReader(data))
	var names []string
	entries := map[string]engineTarEntry{}
	for {
		header, err := reader.Next()
		if errors.Is(err, io.EOF) {
			return names, entries
		}
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(reader)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, header.Name)
		entries[header.Name] = engineTarEntry{header.Typeflag, header.Mode, header.Uid, header.Gid, string(content)}
	}
}

func TestEngine_CreateDeliversFilesWithModesAndParentDirs(t *testing.T) {
	for _, tt := range []struct {
		name, user       string
		fileUID, fileGID int
	}{
		{name: "RootOwnsFilesOfANamedUser", user: "www-data"},
		{name: "NumericUserOwnsItsFiles", user: "1000:1001", fileUID: 1000, fileGID: 1001},
		{name: "NumericUserWithoutGroup", user: "999", fileUID: 999, fileGID: 999},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fake, _, delivered := engineCreateFake(t)
			spec := engineWebSpec()
			spec.User = tt.user
			spec.Files = append(spec.Files, FileSpec{Target: "/srv/defaults.txt", Data: []byte("x")})
			if _, err := (&Engine{API: fake}).Create(context.Background(), spec, "shop-web-1", 1, "r1"); err != nil {
				t.Fatal(err)
			}
			names, entries := engineReadTar(t, *delivered)
			want := []string{"etc/", "etc/shop/", "etc/shop/conf.d/", "etc/shop/conf.d/app.ini", "etc/shop/secret.env", "srv/", "srv/defaults.txt"}
			if !reflect.DeepEqual(names, want) {
				t.Fatalf("tar entries %v, want %v: each parent dir once, before its files", names, want)
			}
			for _, dir := range []string{"etc/", "etc/shop/", "etc/shop/conf.d/", "srv/"} {
				if entry := entries[dir]; entry.kind != tar.TypeDir || entry.mode != 0o755 || entry.uid != 0 || entry.gid != 0 {
					t.Errorf("%s: %+v, want a 0755 root dir", dir, entry)
				}
			}
			wantFiles := map[string]engineTarEntry{
				"etc/shop/secret.env":     {tar.TypeReg, 0o600, tt.fileUID, tt.fileGID, "SECRET_KEY=s3cret\n"},
				"etc/shop/conf.d/app.ini": {tar.TypeReg, 0o644, tt.fileUID, tt.fileGID, "[app]\n"},
				"srv/defaults.txt":        {tar.TypeReg, 0o644, tt.fileUID, tt.fileGID, "x"}, // no mode given: 0644
			}
			for name, want := range wantFiles {
				if entries[name] != want {
					t.Errorf("%s: %+v, want %+v", name, entries[name], want)
				}
			}
		})
	}
}

func TestEngine_CreateRefusesARelativeFileTargetBeforeCreating(t *testing.T) {
	spec := engineWebSpec()
	spec.Files = []FileSpec{{Target: "etc/secret.env", Data: []byte("x")}}
	_, err := (&Engine{API: &engineFake{t: t}}).Create(context.Background(), spec, "shop-web-1", 1, "r1")
	if err == nil || !strings.Contains(err.Error(), `container shop-web-1: file target "etc/secret.env" must be an absolute file path`) {
		t.Fatalf("error %v, want a refusal naming the container and the target", err)
	}
}

func TestEngine_CreateRemovesTheContainerWhenFilesCannotBeDelivered(t *testing.T) {
	fake, _, _ := engineCreateFake(t)
	fake.copyTo = func(string, client.CopyToContainerOptions) (client.CopyToContainerResult, error) {
		return client.CopyToContainerResult{}, errors.New("no space left on device")
	}
	var removed string
	fake.remove = func(containerID string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
		if !options.Force || options.RemoveVolumes {
			t.Errorf("remove options %+v, want force without volumes", options)
		}
		removed = containerID
		return client.ContainerRemoveResult{}, nil
	}
	_, err := (&Engine{API: fake}).Create(context.Background(), engineWebSpec(), "shop-web-1", 1, "r1")
	if err == nil || !strings.Contains(err.Error(), "deliver files into container shop-web-1: no space left on device") {
		t.Fatalf("error %v, want one naming the container", err)
	}
	if removed != "id-shop-web-1" {
		t.Errorf("removed %q, want the half-made container", removed)
	}
}

func TestEngine_CreateRejectsAnUnknownRestartPolicy(t *testing.T) {
	spec := engineWebSpec()
	spec.Restart = "sometimes"
	_, err := (&Engine{API: &engineFake{t: t}}).Create(context.Background(), spec, "shop-web-1", 1, "r1")
	if err == nil || !strings.Contains(err.Error(), `container shop-web-1: restart "sometimes"`) {
		t.Fatalf("error %v, want a refusal naming the container", err)
	}
	spec.Restart = "on-failure:5"
	options, err := createOptions(spec, "shop-web-1", 1, "r1")
	if err != nil || options.HostConfig.RestartPolicy != (container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 5}) {
		t.Fatalf("on-failure:5: %+v %v", options.HostConfig.RestartPolicy, err)
	}
}

// engineStates is an inspect fake answering a sequence of container
// states; the last one repeats.
func engineStates(states ...container.InspectResponse) func(string) (client.ContainerInspectResult, error) {
	var mu sync.Mutex
	next := 0
	return func(containerID string) (client.ContainerInspectResult, error) {
		mu.Lock()
		defer mu.Unlock()
		state := states[min(next, len(states)-1)]
		next++
		state.ID, state.Name = containerID, "/shop-web-1"
		return client.ContainerInspectResult{Container: state}, nil
	}
}

func engineRunning(health container.HealthStatus) container.InspectResponse {
	state := &container.State{Status: container.StateRunning, Running: true}
	if health != "" {
		state.Health = &container.Health{Status: health, FailingStreak: 3, Log: []*container.HealthcheckResult{
			{ExitCode: 0, Output: "healthy\n"}, {ExitCode: 1, Output: "unhealthy: HTTP 500\n"}}}
	}
	return container.InspectResponse{State: state}
}

func engineFastEngine(fake *engineFake) *Engine {
	return &Engine{API: fake, pollInterval: 5 * time.Millisecond, settleRunning: 30 * time.Millisecond}
}

func TestEngine_WaitHealthyDecisions(t *testing.T) {
	created := container.InspectResponse{State: &container.State{Status: container.StateCreated}}
	exited := container.InspectResponse{State: &container.State{Status: container.StateExited, ExitCode: 2}}
	restarting := container.InspectResponse{State: &container.State{Status: container.StateRestarting, Restarting: true, Running: true, ExitCode: 1}}
	restarted := engineRunning("")
	restarted.RestartCount = 2
	tests := []struct {
		name        string
		states      []container.InspectResponse
		timeout     time.Duration
		wantErr     []string // empty: healthy
		wantLogs    bool
		wantTimeout bool
	}{
		{name: "HealthyAfterStarting", states: []container.InspectResponse{created, engineRunning(container.Starting), engineRunning(container.Healthy)}},
		{name: "NoHealthcheckPassesAfterStayingRunning", states: []container.InspectResponse{engineRunning("")}},
		{name: "ExitedFailsAtOnceWithItsLogs", states: []container.InspectResponse{engineRunning(container.Starting), exited},
			wantErr: []string{"container shop-web-1 exited with code 2", "last 20 log lines:", "booting v2", "ImproperlyConfigured: SECRET_KEY"}, wantLogs: true},
		{name: "RestartingFailsAtOnceWithItsLogs", states: []container.InspectResponse{restarting},
			wantErr: []string{"container shop-web-1 is restarting after exiting with code 1", "ImproperlyConfigured"}, wantLogs: true},
		{name: "RestartedFailsEvenWhileRunning", states: []container.InspectResponse{restarted},
			wantErr: []string{"container shop-web-1 restarted 2 time(s)"}, wantLogs: true},
		{name: "UnhealthyFailsWithTheLastHealthOutput", states: []container.InspectResponse{engineRunning(container.Starting), engineRunning(container.Unhealthy)},
			wantErr: []string{"container shop-web-1 is unhealthy after 3 failed healthchecks", "last healthcheck exited 1: unhealthy: HTTP 500"}},
		{name: "TimeoutNamesTheLastStateAndHealth", states: []container.InspectResponse{engineRunning(container.Starting)}, timeout: 100 * time.Millisecond,
			wantErr: []string{"container shop-web-1 did not become healthy (last state running, health starting): context deadline exceeded"}, wantTimeout: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &engineFake{t: t, inspect: engineStates(tt.states...)}
			if tt.wantLogs {
				fake.logs = func(containerID string, options client.ContainerLogsOptions) (client.ContainerLogsResult, error) {
					if containerID != "id-1" || options.Tail != "20" || !options.ShowStdout || !options.ShowStderr {
						t.Errorf("logs of %s with %+v, want the last 20 lines of both streams", containerID, options)
					}
					return engineLogStream("booting v2\n", "ImproperlyConfigured: SECRET_KEY\n"), nil
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), cmpDuration(tt.timeout, 5*time.Second))
			defer cancel()
			err := engineFastEngine(fake).WaitHealthy(ctx, "id-1")
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("WaitHealthy: %v, want healthy", err)
				}
				return
			}
			if err == nil {
				t.Fatal("WaitHealthy passed, want a failure")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			var containerErr *ContainerError
			if !errors.As(err, &containerErr) || containerErr.Container != "shop-web-1" {
				t.Errorf("error %T, want a *ContainerError naming shop-web-1", err)
			}
			if errors.Is(err, context.DeadlineExceeded) != tt.wantTimeout {
				t.Errorf("errors.Is(err, DeadlineExceeded) = %t, want %t", !tt.wantTimeout, tt.wantTimeout)
			}
			if ctx.Err() != nil && !tt.wantTimeout {
				t.Errorf("failed only when the context ended, want at once")
			}
		})
	}
}

func cmpDuration(value, fallback time.Duration) time.Duration {
	if value > 0 {
		return value
	}
	return fallback
}

func TestEngine_WaitHealthyWithoutHealthcheckWaitsTheSettleTime(t *testing.T) {
	fake := &engineFake{t: t, inspect: engineStates(engineRunning(""))}
	engine := &Engine{API: fake, pollInterval: 5 * time.Millisecond, settleRunning: 100 * time.Millisecond}
	started := time.Now()
	if err := engine.WaitHealthy(context.Background(), "id-1"); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(started); waited < 100*time.Millisecond {
		t.Errorf("passed after %v, want at least the 100ms settle time", waited)
	}
}

func TestEngine_WaitHealthyOfAGoneContainerFails(t *testing.T) {
	fake := &engineFake{t: t, inspect: func(string) (client.ContainerInspectResult, error) {
		return client.ContainerInspectResult{}, cerrdefs.ErrNotFound.WithMessage("No such container: id-1")
	}}
	err := engineFastEngine(fake).WaitHealthy(context.Background(), "id-1")
	if err == nil || !strings.Contains(err.Error(), "container id-1 is gone") {
		t.Fatalf("error %v, want one saying the container is gone", err)
	}
}

func TestEngine_RetireStopsInPlaceThenRemovesKeepingVolumes(t *testing.T) {
	fake := &engineFake{t: t,
		inspect: func(containerID string) (client.ContainerInspectResult, error) {
			return client.ContainerInspectResult{Container: container.InspectResponse{ID: containerID, Name: "/shop-web-1",
				Config: &container.Config{Labels: map[string]string{LabelProject: "shop"}}}}, nil
		},
		disconnect: func(networkID string, options client.NetworkDisconnectOptions) (client.NetworkDisconnectResult, error) {
			t.Errorf("disconnected %s from %s: requests in flight would never answer", options.Container, networkID)
			return client.NetworkDisconnectResult{}, nil
		},
		stop: func(containerID string, options client.ContainerStopOptions) (client.ContainerStopResult, error) {
			if options.Timeout != nil {
				t.Errorf("stop timeout %d, want the container's own", *options.Timeout)
			}
			return client.ContainerStopResult{}, nil
		},
		remove: func(containerID string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
			if options.RemoveVolumes || options.Force {
				t.Errorf("remove options %+v, want neither volumes nor force", options)
			}
			return client.ContainerRemoveResult{}, nil
		},
	}
	if err := (&Engine{API: fake}).Retire(context.Background(), "id-1"); err != nil {
		t.Fatal(err)
	}
	if calls := strings.Join(fake.callList(), " "); calls != "ContainerInspect ContainerStop ContainerRemove" {
		t.Errorf("calls %s", calls)
	}
}

func TestEngine_RetireStopErrorNamesTheContainer(t *testing.T) {
	fake := &engineFake{t: t,
		inspect: func(containerID string) (client.ContainerInspectResult, error) {
			return client.ContainerInspectResult{Container: container.InspectResponse{ID: containerID, Name: "/shop-web-1"}}, nil
		},
		stop: func(string, client.ContainerStopOptions) (client.ContainerStopResult, error) {
			return client.ContainerStopResult{}, errors.New("cannot stop")
		},
	}
	err := (&Engine{API: fake}).Retire(context.Background(), "id-1")
	if err == nil || !strings.Contains(err.Error(), "stop container shop-web-1: cannot stop") {
		t.Fatalf("error %v, want the stop failure naming the container", err)
	}
}

func TestEngine_RetireOfAGoneContainerIsDone(t *testing.T) {
	fake := &engineFake{t: t, inspect: func(string) (client.ContainerInspectResult, error) {
		return client.ContainerInspectResult{}, cerrdefs.ErrNotFound
	}}
	if err := (&Engine{API: fake}).Retire(context.Background(), "id-1"); err != nil {
		t.Fatalf("retiring a gone container: %v, want done", err)
	}
}

func TestEngine_RunOneOffWaitsForTheExitAndReturnsCodeAndLogs(t *testing.T) {
	fake, created, _ := engineCreateFake(t)
	exitC := make(chan container.WaitResponse, 1)
	fake.wait = func(_ context.Context, containerID string, options client.ContainerWaitOptions) client.ContainerWaitResult {
		if containerID != "id-shop-migrate-run-20260514t101500z" || options.Condition != container.WaitConditionNextExit {
			t.Errorf("wait for %s until %q, want the one-off's next exit", containerID, options.Condition)
		}
		return client.ContainerWaitResult{Result: exitC, Error: make(chan error)}
	}
	fake.start = func(string) (client.ContainerStartResult, error) {
		exitC <- container.WaitResponse{StatusCode: 3}
		return client.ContainerStartResult{}, nil
	}
	fake.logs = func(_ string, options client.ContainerLogsOptions) (client.ContainerLogsResult, error) {
		if options.Tail != "50" {
			t.Errorf("logs tail %q, want 50", options.Tail)
		}
		return engineLogStream("Applying shop.0042...", " FAILED\n"), nil
	}
	fake.remove = func(string, client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
		return client.ContainerRemoveResult{}, nil
	}
	spec := ServiceSpec{Project: "shop", Name: "migrate", Image: "shop/web:v2", Command: []string{"migrate"}, Restart: "always"}
	code, logs, err := (&Engine{API: fake}).RunOneOff(context.Background(), spec, OneOffName("shop", "migrate", "20260514T101500Z"), "20260514T101500Z")
	if err != nil || code != 3 || logs != "Applying shop.0042... FAILED\n" {
		t.Fatalf("RunOneOff = %d, %q, %v; want 3 and the logs", code, logs, err)
	}
	options := (*created)[0]
	if options.Name != "shop-migrate-run-20260514t101500z" || options.Config.Labels[LabelOneOff] != "True" ||
		options.HostConfig.RestartPolicy.Name != container.RestartPolicyDisabled || len(options.NetworkingConfig.EndpointsConfig["shop_default"].Aliases) != 0 {
		t.Errorf("one-off %s labels %v restart %+v endpoints %+v, want oneoff True, never restarted, no service alias",
			options.Name, options.Config.Labels, options.HostConfig.RestartPolicy, options.NetworkingConfig.EndpointsConfig["shop_default"])
	}
	if calls := strings.Join(fake.callList(), " "); calls != "ContainerCreate ContainerWait ContainerStart ContainerLogs ContainerRemove" {
		t.Errorf("calls %s, want the wait registered before the start", calls)
	}
}

// TestEngine_RunOneOffRefusesATakenName: a one-off runs under the name
// the plan printed or not at all.
func TestEngine_RunOneOffRefusesATakenName(t *testing.T) {
	fake, _, _ := engineCreateFake(t, "shop-migrate-run-r1")
	_, _, err := (&Engine{API: fake}).RunOneOff(context.Background(), ServiceSpec{Project: "shop", Name: "migrate", Image: "x"}, OneOffName("shop", "migrate", "r1"), "r1")
	if !errors.Is(err, ErrNameTaken) {
		t.Fatalf("err = %v, want ErrNameTaken", err)
	}
	if calls := strings.Join(fake.callList(), " "); calls != "ContainerCreate" {
		t.Errorf("calls %s, want only the refused create", calls)
	}
}

func TestEngine_EnsureNetworkCreatesOnlyWhenMissing(t *testing.T) {
	exists := false
	fake := &engineFake{t: t,
		netInspect: func(networkID string) (client.NetworkInspectResult, error) {
			if networkID != "shop_default" {
				t.Errorf("inspect %s, want shop_default", networkID)
			}
			if !exists {
				return client.NetworkInspectResult{}, cerrdefs.ErrNotFound
			}
			var inspected client.NetworkInspectResult
			inspected.Network.ID, inspected.Network.Labels = "net-1", map[string]string{LabelProject: "shop", LabelNetwork: "default"}
			return inspected, nil
		},
		netCreate: func(name string, options client.NetworkCreateOptions) (client.NetworkCreateResult, error) {
			want := map[string]string{LabelProject: "shop", LabelNetwork: "default"}
			if name != "shop_default" || !reflect.DeepEqual(options.Labels, want) {
				t.Errorf("create %s with labels %v, want shop_default with %v", name, options.Labels, want)
			}
			exists = true
			return client.NetworkCreateResult{ID: "net-1"}, nil
		},
	}
	engine := &Engine{API: fake}
	for range 2 {
		if id, err := engine.EnsureNetwork(context.Background(), "shop"); err != nil || id != "net-1" {
			t.Fatalf("EnsureNetwork = %q, %v", id, err)
		}
	}
	if calls := strings.Join(fake.callList(), " "); calls != "NetworkInspect NetworkCreate NetworkInspect" {
		t.Errorf("calls %s, want one create", calls)
	}
}

func TestEngine_EnsureNetworkRefusesAnotherProjectsNetwork(t *testing.T) {
	fake := &engineFake{t: t, netInspect: func(string) (client.NetworkInspectResult, error) {
		var inspected client.NetworkInspectResult
		inspected.Network.ID = "net-9"
		return inspected, nil
	}}
	_, err := (&Engine{API: fake}).EnsureNetwork(context.Background(), "shop")
	if err == nil || !strings.Contains(err.Error(), `network shop_default exists but belongs to project ""`) {
		t.Fatalf("error %v, want a refusal naming the network", err)
	}
}

func TestEngine_EnsureVolumeLabelsTheProjectVolume(t *testing.T) {
	fake := &engineFake{t: t, volCreate: func(options client.VolumeCreateOptions) (client.VolumeCreateResult, error) {
		want := map[string]string{LabelProject: "shop", LabelVolume: "media"}
		if options.Name != "shop_media" || !reflect.DeepEqual(options.Labels, want) {
			t.Errorf("volume %s labels %v, want shop_media with %v", options.Name, options.Labels, want)
		}
		return client.VolumeCreateResult{Volume: volume.Volume{Name: options.Name}}, nil
	}}
	if name, err := (&Engine{API: fake}).EnsureVolume(context.Background(), "shop", "media"); err != nil || name != "shop_media" {
		t.Fatalf("EnsureVolume = %q, %v", name, err)
	}
}

func TestEngine_RemoveProjectKeepsVolumesUnlessAsked(t *testing.T) {
	for _, volumes := range []bool{false, true} {
		t.Run(fmt.Sprintf("volumes=%t", volumes), func(t *testing.T) {
			var removedVolumes []string
			fake := &engineFake{t: t,
				list: func(client.ContainerListOptions) (client.ContainerListResult, error) {
					return client.ContainerListResult{Items: []container.Summary{
						{ID: "c1", Names: []string{"/shop-web-1"}, Labels: map[string]string{LabelService: "web"}},
						{ID: "c2", Names: []string{"/shop-db-1"}, Labels: map[string]string{LabelService: "db"}},
					}}, nil
				},
				remove: func(containerID string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
					if !options.Force || options.RemoveVolumes != volumes {
						t.Errorf("remove %s with %+v, want force, anonymous volumes only when asked", containerID, options)
					}
					return client.ContainerRemoveResult{}, nil
				},
				netRemove: func(networkID string) (client.NetworkRemoveResult, error) {
					if networkID != "shop_default" {
						t.Errorf("network %s removed", networkID)
					}
					return client.NetworkRemoveResult{}, nil
				},
			}
			if volumes {
				fake.volList = func(options client.VolumeListOptions) (client.VolumeListResult, error) {
					if !options.Filters["label"][LabelProject+"=shop"] {
						t.Errorf("volume filters %v, want the project label", options.Filters)
					}
					return client.VolumeListResult{Items: []volume.Volume{{Name: "shop_pgdata"}, {Name: "shop_media"}}}, nil
				}
				fake.volRemove = func(volumeID string) (client.VolumeRemoveResult, error) {
					removedVolumes = append(removedVolumes, volumeID)
					return client.VolumeRemoveResult{}, nil
				}
			}
			if err := (&Engine{API: fake}).RemoveProject(context.Background(), "shop", volumes); err != nil {
				t.Fatal(err)
			}
			if volumes && strings.Join(removedVolumes, " ") != "shop_pgdata shop_media" {
				t.Errorf("removed volumes %v", removedVolumes)
			}
		})
	}
}

func TestEngine_LogsDemultiplexesBothStreams(t *testing.T) {
	fake := &engineFake{t: t, logs: func(_ string, options client.ContainerLogsOptions) (client.ContainerLogsResult, error) {
		if options.Tail != "all" {
			t.Errorf("tail %q, want all", options.Tail)
		}
		return engineLogStream("out 1\n", "err 1\n", "out 2\n"), nil
	}}
	logs, err := (&Engine{API: fake}).Logs(context.Background(), "id-1", 0)
	if err != nil || logs != "out 1\nerr 1\nout 2\n" {
		t.Fatalf("Logs = %q, %v", logs, err)
	}
}

func TestEngine_ImagePresentAndTag(t *testing.T) {
	fake := &engineFake{t: t,
		imgInspect: func(ref string) (client.ImageInspectResult, error) {
			if ref == "shop/web:missing" {
				return client.ImageInspectResult{}, cerrdefs.ErrNotFound
			}
			var inspected client.ImageInspectResult
			inspected.ID = "sha256:abc"
			return inspected, nil
		},
		imgTag: func(options client.ImageTagOptions) (client.ImageTagResult, error) {
			if options.Source != "shop/web:v2" || options.Target != "shop/web:stable" {
				t.Errorf("tag %+v", options)
			}
			return client.ImageTagResult{}, nil
		},
	}
	engine := &Engine{API: fake}
	if id, ok, err := engine.ImagePresent(context.Background(), "shop/web:v2"); id != "sha256:abc" || !ok || err != nil {
		t.Errorf("present image: %q %t %v", id, ok, err)
	}
	if id, ok, err := engine.ImagePresent(context.Background(), "shop/web:missing"); id != "" || ok || err != nil {
		t.Errorf("missing image: %q %t %v, want not present and no error", id, ok, err)
	}
	if err := engine.TagImage(context.Background(), "shop/web:v2", "shop/web:stable"); err != nil {
		t.Error(err)
	}
}

func TestEngine_BuildImageSurfacesTheBuildsError(t *testing.T) {
	stream := `{"stream":"Step 1/2 : FROM scratch\n"}` + "\n" + `{"stream":"Step 2/2 : COPY app /app\n"}` + "\n" +
		`{"errorDetail":{"message":"COPY failed: file not found in build context"},"error":"COPY failed: file not found in build context"}` + "\n"
	fake := &engineFake{t: t, imgBuild: func(_ io.Reader, options client.ImageBuildOptions) (client.ImageBuildResult, error) {
		if strings.Join(options.Tags, " ") != "shop/web:v2" || options.Version != "1" || *options.BuildArgs["VERSION"] != "v2" {
			t.Errorf("build options %+v, want the tag, the classic builder and the build args", options)
		}
		return client.ImageBuildResult{Body: io.NopCloser(strings.NewReader(stream))}, nil
	}}
	version := "v2"
	err := (&Engine{API: fake}).BuildImage(context.Background(), strings.NewReader(""), "shop/web:v2", map[string]*string{"VERSION": &version})
	if err == nil || !strings.Contains(err.Error(), "build image shop/web:v2: COPY failed: file not found in build context") ||
		!strings.Contains(err.Error(), "Step 2/2 : COPY app /app") {
		t.Fatalf("error %v, want the build's message and the output before it", err)
	}
}

func TestEngine_PublishRejoinsWithTheAlias(t *testing.T) {
	var calls []string
	var alias []string
	fake := &engineFake{
		disconnect: func(networkID string, options client.NetworkDisconnectOptions) (client.NetworkDisconnectResult, error) {
			calls = append(calls, "disconnect "+networkID+" "+options.Container)
			return client.NetworkDisconnectResult{}, nil
		},
		connect: func(networkID string, options client.NetworkConnectOptions) (client.NetworkConnectResult, error) {
			calls = append(calls, "connect "+networkID+" "+options.Container)
			alias = options.EndpointConfig.Aliases
			return client.NetworkConnectResult{}, nil
		},
	}
	e := &Engine{API: fake}
	if err := e.Publish(context.Background(), "c1", ServiceSpec{Project: "demo-staging", Name: "web", StartFirst: true}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(calls, ";") != "disconnect demo-staging_default c1;connect demo-staging_default c1" || len(alias) != 1 || alias[0] != "web" {
		t.Errorf("calls %v alias %v", calls, alias)
	}
}

func TestRedactVerifiers_RemovesSCRAMAndMD5Verifiers(t *testing.T) {
	in := `psql:/tmp/obcd-roles.sql:9: ERROR:  role "x" does not exist
LINE 1: ALTER ROLE "x" WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy';
"obcms_user" "md50123456789abcdef0123456789abcdef"`
	out := RedactVerifiers(in)
	if strings.Contains(out, "c2VydmVy") || strings.Contains(out, "0123456789abcdef0123456789abcdef") || strings.Count(out, "<verifier redacted>") != 2 {
		t.Errorf("redacted:\n%s", out)
	}
	if !strings.Contains(out, `role "x" does not exist`) {
		t.Errorf("the error itself is gone:\n%s", out)
	}
}
