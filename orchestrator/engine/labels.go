package engine

import (
	"fmt"
	"regexp"
	"strings"
)

// Labels obcd puts on every container. The compose ones make
// `docker compose ps` and friends see obcd's containers as a project.
const (
	// LabelProject is the compose project: <stack>-<environment>.
	LabelProject = "com.docker.compose.project"
	// LabelService is the compose service name.
	LabelService = "com.docker.compose.service"
	// LabelContainerNumber is the replica number, from 1.
	LabelContainerNumber = "com.docker.compose.container-number"
	// LabelOneOff is "True" for run-to-completion containers, else "False".
	LabelOneOff = "com.docker.compose.oneoff"
	// LabelComposeConfigHash must be present for compose; obcd writes its
	// own hash there too (compose's own algorithm varies by version).
	LabelComposeConfigHash = "com.docker.compose.config-hash"
	// LabelNetwork names a project network's key, for compose.
	LabelNetwork = "com.docker.compose.network"
	// LabelVolume names a project volume's key, for compose.
	LabelVolume = "com.docker.compose.volume"
	// LabelRelease is the obcd release that created the container.
	LabelRelease = "dev.obcd.release"
	// LabelHash is ServiceSpec.Hash: what forces a recreate.
	LabelHash = "dev.obcd.hash"
)

// NetworkName is the project's network, as compose names it.
func NetworkName(projectName string) string { return projectName + "_default" }

// VolumeName is the engine name of the project's volume key.
func VolumeName(projectName, volumeKey string) string { return projectName + "_" + volumeKey }

// ContainerName is the compose name of a service's replica.
func ContainerName(projectName, serviceName string, number int) string {
	return fmt.Sprintf("%s-%s-%d", projectName, serviceName, number)
}

// OneOffName is the name of a one-off run of a service (migrate, the
// backup before migrations) for a release: <project>-<service>-run-<id>,
// with the release ID cut to fit a container name.
func OneOffName(projectName, serviceName, release string) string {
	return fmt.Sprintf("%s-%s-run-%s", projectName, serviceName, shortRelease(release))
}

var nameUnsafe = regexp.MustCompile(`[^a-z0-9_.-]+`)

// shortRelease is a release ID fit for a container name: lowercase, and
// no longer than a release ID (20261123T190102Z-a1b2c3), whose random
// part keeps two releases of one second apart.
func shortRelease(release string) string {
	short := nameUnsafe.ReplaceAllString(strings.ToLower(release), "")
	if len(short) > 23 {
		short = short[:23]
	}
	if short == "" {
		short = "norelease"
	}
	return short
}
