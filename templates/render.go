package templates

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"sort"

	stackhcl "github.com/obcd/obcd/hcl"
)

// Render produces every artifact of one environment, sorted by path, with
// a manifest of their checksums last. The output depends only on the
// stack and the secret values, so rendering twice gives identical bytes.
func Render(s *stackhcl.Stack, secrets SecretSource) ([]Artifact, error) {
	var artifacts []Artifact
	families := []struct {
		name   string
		render func() ([]Artifact, error)
	}{
		{"database", func() ([]Artifact, error) { return renderDatabase(s, secrets) }},
		{"monitoring", func() ([]Artifact, error) { return renderMonitoring(s) }},
		{"nginx", func() ([]Artifact, error) { return renderNginx(s) }},
		{"env", func() ([]Artifact, error) { return renderEnv(s) }},
		{"backup", func() ([]Artifact, error) { return renderBackup(s), nil }},
	}
	for _, f := range families {
		out, err := f.render()
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", f.name, err)
		}
		artifacts = append(artifacts, out...)
	}
	compose, err := renderCompose(s, artifacts)
	if err != nil {
		return nil, fmt.Errorf("render compose: %w", err)
	}
	artifacts = append(artifacts, compose)
	sort.Slice(artifacts, func(i, j int) bool { return artifacts[i].Path < artifacts[j].Path })
	if err := checkPaths(artifacts); err != nil {
		return nil, err
	}
	manifest, err := renderManifest(s, artifacts)
	if err != nil {
		return nil, err
	}
	return append(artifacts, manifest), nil
}

// Manifest lists every rendered file with its checksum and mode; deploys
// hash it to tell whether the rendered configuration changed.
type Manifest struct {
	// Generator names the writer, always "obcd": render --out replaces a
	// directory only when its manifest says obcd wrote it.
	Generator   string          `json:"generator"`
	Stack       string          `json:"stack"`
	Environment string          `json:"environment"`
	Version     string          `json:"version"`
	Files       []ManifestEntry `json:"files"`
}

// ManifestGenerator is a Manifest's Generator.
const ManifestGenerator = "obcd"

// ManifestEntry is one file of a Manifest.
type ManifestEntry struct {
	Path   string `json:"path"`
	Mode   string `json:"mode"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
}

func renderManifest(s *stackhcl.Stack, artifacts []Artifact) (Artifact, error) {
	m := Manifest{Generator: ManifestGenerator, Stack: s.Name, Environment: s.Environment, Version: s.Version}
	for _, a := range artifacts {
		sum := sha256.Sum256(a.Data)
		m.Files = append(m.Files, ManifestEntry{
			Path: a.Path, Mode: fmt.Sprintf("%04o", a.Mode.Perm()), Size: len(a.Data), SHA256: hex.EncodeToString(sum[:]),
		})
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Artifact{}, fmt.Errorf("marshal manifest: %w", err)
	}
	return Artifact{Path: PathManifest, Mode: ModePublic, Data: append(data, '\n')}, nil
}

// checkPaths guards the writer: every path is relative, clean and unique.
func checkPaths(artifacts []Artifact) error {
	seen := map[string]bool{}
	for _, a := range artifacts {
		if a.Path == "" || path.IsAbs(a.Path) || path.Clean(a.Path) != a.Path || a.Path == ".." || len(a.Path) > 2 && a.Path[:3] == "../" {
			return fmt.Errorf("internal error: artifact path %q is not a clean relative path", a.Path)
		}
		if seen[a.Path] {
			return fmt.Errorf("internal error: artifact %q rendered twice", a.Path)
		}
		seen[a.Path] = true
	}
	return nil
}
