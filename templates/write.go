package templates

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/obcd/obcd/internal/atomicfile"
)

// ErrForeignDir says the output directory holds files obcd did not write.
var ErrForeignDir = errors.New("output directory was not written by obcd")

// WriteDir writes artifacts to dir all at once (atomicfile.ReplaceDir):
// a failure at any point leaves dir as it was. An existing dir is
// replaced only when it holds an obcd manifest, so a mistyped --out never
// deletes someone's files.
func WriteDir(dir string, artifacts []Artifact) error {
	dir = filepath.Clean(dir)
	if err := checkReplaceable(dir); err != nil {
		return err
	}
	return atomicfile.ReplaceDir(dir, Files(artifacts))
}

// Files are the artifacts as files to write.
func Files(artifacts []Artifact) []atomicfile.File {
	files := make([]atomicfile.File, len(artifacts))
	for i, a := range artifacts {
		files[i] = atomicfile.File(a)
	}
	return files
}

// checkReplaceable allows replacing dir when it is missing, empty, or
// written by obcd: its manifest names obcd as the generator, and every
// file in it is one that manifest lists. Anything else in it is the
// user's, and the error names it.
func checkReplaceable(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("read %s: %w", dir, err)
	case len(entries) == 0:
		return nil
	}
	all, err := filesUnder(dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, PathManifest))
	if err != nil {
		return fmt.Errorf("%w: %s has files but no %s, and replacing it would delete them: %s; choose another --out, or move them away",
			ErrForeignDir, dir, PathManifest, listSome(all))
	}
	var m Manifest
	err = json.Unmarshal(data, &m)
	// A manifest of an obcd from before Generator has its stack and files.
	legacy := m.Generator == "" && m.Stack != "" && len(m.Files) > 0
	if err != nil || (m.Generator != ManifestGenerator && !legacy) {
		return fmt.Errorf("%w: %s holds a %s that obcd did not write (no \"generator\": %q), and replacing it would delete its files: %s; choose another --out, or move them away",
			ErrForeignDir, dir, PathManifest, ManifestGenerator, listSome(all))
	}
	listed := map[string]bool{PathManifest: true}
	for _, f := range m.Files {
		listed[filepath.FromSlash(f.Path)] = true
	}
	var foreign []string
	for _, rel := range all {
		if !listed[rel] {
			foreign = append(foreign, rel)
		}
	}
	if len(foreign) > 0 {
		return fmt.Errorf("%w: %s holds files its %s does not list, which replacing it would delete: %s; move them away, or choose another --out",
			ErrForeignDir, dir, PathManifest, listSome(foreign))
	}
	return nil
}

// filesUnder lists the files (not directories) under dir, relative to it.
func filesUnder(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		files = append(files, rel)
		return err
	})
	return files, err
}

// listSome joins the first ten names, and counts the rest.
func listSome(names []string) string {
	shown := names[:min(len(names), 10)]
	more := ""
	if len(names) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(names)-len(shown))
	}
	return strings.Join(shown, ", ") + more
}
