package orchestrator

import (
	"context"
	"fmt"
	"testing"

	"github.com/moby/moby/client"

	"github.com/obcd/obcd/internal/testsvc"
)

// TestPrune_AfterEightDeploysOnTheRealEngine: with the default retention
// five release records remain; the images of the pruned releases are gone
// unless a container uses them (the proxy runs v1's image), and volumes
// stay.
func TestPrune_AfterEightDeploysOnTheRealEngine(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	api := e.engine.API.(testsvc.AppImageAPI)
	versions := []string{"v1", "v2"}
	for i := 5; i <= 10; i++ {
		version := fmt.Sprintf("v%d", i)
		testsvc.BuildAppImage(t, api, e.repo+":"+version, testsvc.AppImageOptions{Version: version})
		versions = append(versions, version)
	}
	if _, err := e.engine.EnsureVolume(ctx, e.project, "data"); err != nil {
		t.Fatal(err)
	}
	images := map[string]string{}
	for _, version := range versions {
		d := e.deployer(version)
		d.Keep = DefaultKeep
		result, err := d.Deploy(ctx, DeployOptions{})
		if err != nil {
			t.Fatalf("%s: %v\n%s", version, err, result.Report)
		}
		images[version] = result.Release.ImageDigests["web"]
	}
	releases, err := e.store.List(ctx)
	if err != nil || len(releases) != DefaultKeep {
		t.Fatalf("%d release records after 8 deploys (%v), want %d", len(releases), err, DefaultKeep)
	}
	for _, version := range versions {
		_, present, err := e.engine.ImagePresent(ctx, images[version])
		if err != nil {
			t.Fatal(err)
		}
		pruned := version == "v2" || version == "v5" // and v1, whose image the proxy runs
		switch {
		case version == "v1" && !present:
			t.Errorf("v1's image is gone, though the proxy runs it")
		case pruned && present:
			t.Errorf("%s's image %s is still there after its release was pruned", version, images[version])
		case !pruned && version != "v1" && !present:
			t.Errorf("%s's image is gone, though its release is kept", version)
		}
	}
	if _, err := e.engine.API.(volumeInspector).VolumeInspect(ctx, e.project+"_data", client.VolumeInspectOptions{}); err != nil {
		t.Errorf("the project's volume after prune: %v", err)
	}
}

type volumeInspector interface {
	VolumeInspect(ctx context.Context, volumeID string, options client.VolumeInspectOptions) (client.VolumeInspectResult, error)
}
