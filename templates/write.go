package templates

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
	if _, err := os.Stat(filepath.Join(dir, PathManifest)); err != nil {
		return fmt.Errorf("%w: %s has files but no %s; choose another --out, or move its files away: %w",
			ErrForeignDir, dir, PathManifest, err)
	}
	return nil
}
