package state

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/obcd/obcd/internal/who"
	"github.com/obcd/obcd/orchestrator/probe"
)

// Outcome is where a release ended up.
type Outcome string

// Outcomes of a release.
const (
	OutcomeInProgress Outcome = "in-progress"
	// OutcomeSucceeded: live, proven, and stable.
	OutcomeSucceeded Outcome = "succeeded"
	// OutcomeFailed: it stopped before any change, or changed what had no
	// release before it to return to.
	OutcomeFailed Outcome = "failed"
	// OutcomeRolledBack: it failed after changes began, and the previous
	// release runs again, proven by the probes.
	OutcomeRolledBack Outcome = "rolled-back"
	// OutcomeRollbackFailed: it failed after changes began, and the
	// previous release could not be proven either.
	OutcomeRollbackFailed Outcome = "rollback-failed"
	// OutcomeInterrupted: the deploy process ended (killed, host lost)
	// before it finished; the next deploy marks it so and converges.
	OutcomeInterrupted Outcome = "interrupted"
)

// Release is the record of one deploy or rollback of an environment:
// what was deployed, by whom, and how it ended.
type Release struct {
	ID           string            `json:"id"` // sortable: 20261123T190102Z-<6 hex>
	Environment  string            `json:"environment"`
	Created      time.Time         `json:"created"`
	Finished     time.Time         `json:"finished,omitzero"`
	User         string            `json:"user"`
	Host         string            `json:"host"`
	Version      string            `json:"version"`       // the stack's APP_VERSION
	Images       map[string]string `json:"images"`        // service -> image reference deployed
	ImageDigests map[string]string `json:"image_digests"` // service -> image ID or digest
	// RepoDigests are, per service, the registry digest (repo@sha256:…)
	// of the image it ran, when the image came from a registry: a rollback
	// pulls it back by that digest when the engine has lost the image ID.
	RepoDigests    map[string]string `json:"repo_digests,omitempty"`
	ConfigHash     string            `json:"config_hash"`     // sha256 of the rendered manifest
	SecretVersions map[string]string `json:"secret_versions"` // secret name -> SecretVersion, never the value
	Probes         []probe.Result    `json:"probes"`
	Outcome        Outcome           `json:"outcome"`
	Stable         bool              `json:"stable"`            // the release rollbacks return to
	Message        string            `json:"message,omitempty"` // why it failed, or what was rolled back to
	RolledBackTo   string            `json:"rolled_back_to,omitempty"`
	// RollbackOf is the release a manual rollback returned to: the
	// rollback is a release of its own, with that release's images and
	// config, so history says who rolled back, when, and to what.
	RollbackOf string `json:"rollback_of,omitempty"`
	// Migrations are the Django migrations (app.name) the database had
	// applied when the release became stable, from django_migrations; nil
	// when they could not be read (a stack without manage.py).
	Migrations []string `json:"migrations,omitempty"`
}

// releaseIDLayout is the time part of a release ID: UTC, to the second,
// so that IDs sort in creation order.
const releaseIDLayout = "20060102T150405Z"

// NewReleaseID returns a new sortable release ID for now, such as
// 20261123T190102Z-a1b2c3.
func NewReleaseID(now time.Time) string {
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix) // crypto/rand.Read never fails on supported platforms
	return now.UTC().Format(releaseIDLayout) + "-" + hex.EncodeToString(suffix)
}

// NewRelease starts the record of a release of environment at now, by
// this user on this host, in progress.
func NewRelease(environment string, now time.Time) Release {
	return Release{
		ID:          NewReleaseID(now),
		Environment: environment,
		Created:     now.UTC(),
		User:        who.User(),
		Host:        who.Host(),
		Outcome:     OutcomeInProgress,
	}
}

// SecretVersion identifies a secret's value without revealing it: the
// first 16 hex chars of HMAC-SHA256 keyed by "obcd secret version\x00"+name
// over the value. The same value under two names gives two versions.
func SecretVersion(name, value string) string {
	mac := hmac.New(sha256.New, []byte("obcd secret version\x00"+name))
	mac.Write([]byte(value))
	return hex.EncodeToString(mac.Sum(nil))[:16]
}
